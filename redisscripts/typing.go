package redisscripts

import (
	"context"
	_ "embed"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed typing.lua
var typingSource string

var typingScript = redis.NewScript(typingSource)

// AdmitTyping reports whether a typing event of user in room may be
// published now: at most one per window, shared by every instance. When
// admitted it returns Redis's clock, the event's time; otherwise the zero
// time.
func (s *Store) AdmitTyping(ctx context.Context, room, user string, window time.Duration) (time.Time, bool, error) {
	ms, err := typingScript.Run(ctx, s.rdb, []string{s.keys.typing(room, user)}, window.Milliseconds()).Int64()
	if err != nil {
		return time.Time{}, false, wrapRedisError("admit typing", err)
	}
	if ms == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(ms).UTC(), true, nil
}
