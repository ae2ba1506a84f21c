package redisscripts

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

//go:embed post_message.lua
var postMessageSource string

var postMessageScript = redis.NewScript(readStateSource + clockSource + idempotencySource + postMessageSource)

// Post stores p in its room's history and publishes it on the room's
// channel (see PublishRoom for which) in one atomic step. Concurrent posts
// share Redis round trips (see batcher); a post is sent at most once, so an
// error may hide a stored message, which a retry with the same
// IdempotencyKey finds.
func (s *Store) Post(ctx context.Context, p chat.Post) (chat.Posted, error) {
	keys, args, err := s.postCall(p)
	if err != nil {
		return chat.Posted{}, err
	}
	reply, err := s.posts.run(ctx, keys, args...)
	if err != nil {
		return chat.Posted{}, wrapRedisError("post message", err)
	}
	posted, err := postedOf(reply)
	if err == nil && firstMarker(reply) {
		// The message is stored and published: a failure here must not
		// become an error that makes the client post again. The next mark
		// that moves the user's marker adds the room to the index.
		_ = s.indexRoom(ctx, p.User, p.Room)
	}
	return posted, err
}

// postMembers writes a message's members: fields without the braces, as
// json.Marshal of the struct {user, text} wrote them, and tail, those
// after version. Both make the idempotency fingerprint: a retry with the
// same key and another text, reply or metadata is a different message.
func postMembers(user, text string, reply chat.ID, metadata string) (fields, tail []byte) {
	fields = appendJSONString(append(make([]byte, 0, len(user)+len(text)+24), `"user":`...), user)
	fields = appendJSONString(append(fields, `,"text":`...), text)
	if reply.Epoch != "" {
		tail = append(append(append(tail, `,"reply_to":"`...), reply.String()...), '"')
	}
	if metadata != "" {
		tail = append(append(tail, `,"metadata":`...), metadata...)
	}
	return fields, tail
}

// postCall is the KEYS and ARGV of the post script for p.
func (s *Store) postCall(p chat.Post) (keys []string, args []any, err error) {
	fields, tail := postMembers(p.User, p.Text, p.ReplyTo, p.Metadata)
	replyEpoch, replySeq := "", int64(0)
	if p.ReplyTo.Epoch != "" {
		replyEpoch, replySeq = p.ReplyTo.Epoch, p.ReplyTo.Seq
	}
	room := appendJSONString(nil, p.Room)
	keys = []string{s.keys.meta(p.Room), s.keys.history(p.Room), s.keys.read(p.Room), s.keys.live(p.Room), s.keys.log(p.Room),
		s.keys.settings(p.Room), s.keys.slow(p.Room, p.User), s.keys.roomIndex(s.keys.bucketTag(p.Room))}
	fingerprint := ""
	if p.IdempotencyKey != "" {
		keys = append(keys, s.keys.idempotency(p.Room, p.User, p.IdempotencyKey))
		sent := append(fields[:len(fields):len(fields)], tail...)
		if p.Sent != nil {
			f, t := postMembers(p.User, p.Sent.Text, p.ReplyTo, p.Sent.Metadata)
			sent = append(f, t...)
		}
		sum := sha256.Sum256(sent)
		fingerprint = hex.EncodeToString(sum[:])
	}
	webhookRoom := ""
	if s.webhooks.messages {
		keys = append(keys, s.keys.webhookOutbox(p.Room), s.keys.webhookDue(s.keys.bucketTag(p.Room)))
		webhookRoom = p.Room
	}
	return keys, []any{s.roomChannel(p.Room), room, fields, s.historyMax, s.idempotencyTTL.Milliseconds(),
		fingerprint, s.roomTTL.Milliseconds(), s.publishCommand(), p.User, webhookRoom,
		replyEpoch, replySeq, string(tail), moderatorArg(p.Moderator), p.Room}, nil // "" boxes without allocating
}

// moderatorArg is a script's flag for a poster who may moderate.
func moderatorArg(moderator bool) string {
	if moderator {
		return "1"
	}
	return ""
}

// postedOf checks the post script's reply {status, message[, first
// marker]} (firstMarker reads the third).
func postedOf(raw any) (chat.Posted, error) {
	reply, ok := raw.([]any)
	if !ok {
		return chat.Posted{}, fmt.Errorf("post message: unexpected reply %T", raw)
	}
	if len(reply) != 2 && len(reply) != 3 {
		return chat.Posted{}, fmt.Errorf("post message: unexpected reply length %d", len(reply))
	}
	status, _ := reply[0].(int64)
	message, _ := reply[1].(string)
	switch status {
	case 2:
		return chat.Posted{}, chat.ErrIdempotencyConflict
	case 3:
		return chat.Posted{}, chat.ErrUnknownReply
	case 4:
		return chat.Posted{}, chat.ErrReadOnly
	case 5:
		wait, _ := reply[len(reply)-1].(int64)
		return chat.Posted{}, &chat.SlowModeError{RetryAfter: time.Duration(wait) * time.Millisecond}
	}
	stored := []byte(message)
	id, err := chat.IDOf(stored)
	if err != nil {
		return chat.Posted{}, fmt.Errorf("post message: reply: %w", err)
	}
	return chat.Posted{ID: id, JSON: stored, Replayed: status == 1}, nil
}

// firstMarker reports whether a post script's reply says that the poster
// had no read marker in the room before the message.
func firstMarker(raw any) bool {
	reply, _ := raw.([]any)
	if len(reply) != 3 {
		return false
	}
	first, _ := reply[2].(int64)
	return first == 1
}
