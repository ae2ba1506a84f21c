package redisscripts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// ErrInvalidEvent is returned by PublishEvent for a name or data that does
// not fit the wire form of an event.
var ErrInvalidEvent = errors.New("invalid event")

// PublishEvent publishes an ephemeral event (join, leave, typing, …) to the
// live streams of room on every instance; it is never stored, and a stream
// that is not connected at the time never sees it. On the room's channel it
// is "!<name>\n<data>", which tells it apart from a stored message (JSON,
// starting with "{"); streams send it as "event: <name>" and "data: <data>"
// without an id. name is 1 to 32 characters from a-z; data is one line of
// JSON. This is the only place that publishes events, so that the choice of
// PUBLISH or SPUBLISH is made once.
func (s *Store) PublishEvent(ctx context.Context, room, name string, data []byte) error {
	if !validEventName(name) || len(data) == 0 || data[0] != '{' || bytes.ContainsAny(data, "\r\n") {
		return fmt.Errorf("publish %q event: %w", name, ErrInvalidEvent)
	}
	payload := make([]byte, 0, 1+len(name)+1+len(data))
	payload = append(append(append(append(payload, '!'), name...), '\n'), data...)
	if err := s.rdb.Publish(ctx, s.keys.Channel(room), payload).Err(); err != nil {
		return wrapRedisError("publish event", err)
	}
	return nil
}

func validEventName(name string) bool {
	if len(name) < 1 || len(name) > 32 {
		return false
	}
	for i := range len(name) {
		if name[i] < 'a' || name[i] > 'z' {
			return false
		}
	}
	return true
}
