package redisscripts

import (
	"context"
	_ "embed"
	"errors"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

//go:embed get_message.lua
var getMessageSource string

var getMessageScript = redis.NewScript(getMessageSource)

// Message returns the latest version of the message id of room, a
// tombstone for a deleted one, or chat.ErrUnknownMessage when the room has
// no such message (of another epoch, trimmed from history, or never
// posted).
func (s *Store) Message(ctx context.Context, room string, id chat.ID) ([]byte, error) {
	text, err := getMessageScript.Run(ctx, s.rdb, []string{s.keys.meta(room), s.keys.history(room)},
		id.Epoch, id.Seq).Text()
	if errors.Is(err, redis.Nil) {
		return nil, chat.ErrUnknownMessage
	}
	if err != nil {
		return nil, wrapRedisError("read message", err)
	}
	return []byte(text), nil
}
