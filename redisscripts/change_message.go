package redisscripts

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

var (
	//go:embed clock.lua
	clockSource string
	//go:embed idempotency.lua
	idempotencySource string
	//go:embed change_message.lua
	changeMessageSource string
	//go:embed edit_message.lua
	editMessageSource string
	//go:embed delete_message.lua
	deleteMessageSource string
)

var (
	editMessageScript   = redis.NewScript(readStateSource + clockSource + idempotencySource + changeMessageSource + editMessageSource)
	deleteMessageScript = redis.NewScript(readStateSource + clockSource + idempotencySource + changeMessageSource + deleteMessageSource)
)

// Change edits or deletes a stored message and publishes the change on
// the room's channel, in one atomic step that first checks who asks (the
// author or a moderator), the message's state, c.IfMatch and the edit
// window. A refused change stores nothing and returns chat.ErrUnknownMessage,
// chat.ErrNotAuthor, chat.ErrEditWindow, chat.ErrDeleted or
// chat.ErrVersionMismatch (the last two with the message as it is), or
// chat.ErrIdempotencyConflict.
func (s *Store) Change(ctx context.Context, c chat.Change) (chat.Changed, error) {
	user := string(appendJSONString(nil, c.User))
	moderator := ""
	if c.Moderator {
		moderator = "1"
	}
	ifMatch := ""
	if c.IfMatch != nil {
		var b strings.Builder
		b.WriteByte(',')
		for _, v := range c.IfMatch {
			b.WriteString(strconv.FormatInt(v, 10))
			b.WriteByte(',')
		}
		ifMatch = b.String()
	}
	keys := []string{s.keys.meta(c.Room), s.keys.history(c.Room), s.keys.log(c.Room), s.keys.read(c.Room), s.keys.live(c.Room),
		s.keys.settings(c.Room)}
	script, op, own := deleteMessageScript, "delete", []any(nil)
	if !c.Delete {
		text := string(appendJSONString(nil, c.Text))
		setMetadata := ""
		if c.SetMetadata {
			setMetadata = "set"
		}
		script, op, own = editMessageScript, "edit", []any{text, setMetadata, c.Metadata}
	}
	fingerprint := ""
	if c.IdempotencyKey != "" {
		keys = append(keys, s.keys.idempotency(c.Room, c.User, c.IdempotencyKey))
		sent := own
		if c.Sent != nil && !c.Delete {
			setMetadata := ""
			if c.Sent.SetMetadata {
				setMetadata = "set"
			}
			sent = []any{string(appendJSONString(nil, c.Sent.Text)), setMetadata, c.Sent.Metadata}
		}
		sum := sha256.Sum256(fmt.Appendf(nil, "%s\n%s\n%v", op, c.ID, sent))
		fingerprint = hex.EncodeToString(sum[:])
	}
	webhookRoom := ""
	if c.Delete && s.webhooks.deleted || !c.Delete && s.webhooks.edited {
		keys = append(keys, s.keys.webhookOutbox(c.Room), s.keys.webhookDue(s.keys.bucketTag(c.Room)))
		webhookRoom = c.Room
	}
	args := append([]any{s.roomChannel(c.Room), s.publishCommand(), c.ID.Epoch, c.ID.Seq, user, moderator, ifMatch,
		c.EditWindow.Milliseconds(), s.roomTTL.Milliseconds(), s.idempotencyTTL.Milliseconds(), fingerprint, webhookRoom}, own...)
	reply, err := script.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return chat.Changed{}, wrapRedisError(op+" message", err)
	}
	if len(reply) != 2 {
		return chat.Changed{}, fmt.Errorf("%s message: unexpected reply length %d", op, len(reply))
	}
	status, _ := reply[0].(int64)
	message, _ := reply[1].(string)
	changed := chat.Changed{JSON: []byte(message), Replayed: status == 1}
	switch status {
	case 0, 1:
		return changed, nil
	case 2:
		return chat.Changed{}, chat.ErrIdempotencyConflict
	case 3:
		return chat.Changed{}, chat.ErrUnknownMessage
	case 4:
		return chat.Changed{}, chat.ErrNotAuthor
	case 5:
		return chat.Changed{}, chat.ErrEditWindow
	case 6:
		return changed, chat.ErrDeleted
	case 7:
		return changed, chat.ErrVersionMismatch
	}
	return chat.Changed{}, fmt.Errorf("%s message: unexpected status %d", op, status)
}
