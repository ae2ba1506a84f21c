package chat

import (
	"errors"
	"fmt"
	"time"
)

// Settings are a room's own settings (PUT /rooms/{room}). A zero field
// means the server's default: no title or topic, HISTORY_MAX, ROOM_TTL,
// posts open to writers, no slow mode. The post script reads them on
// every post, so a change applies on every instance at once.
type Settings struct {
	Title      string
	Topic      string
	HistoryMax int           // messages kept; 0: the server's HISTORY_MAX
	TTL        time.Duration // how long the room is kept after its last change; 0: ROOM_TTL
	ReadOnly   bool          // only moderators and server API keys may post
	SlowMode   time.Duration // shortest time between two posts of a user; 0: none
}

// ErrReadOnly is returned by a post to a read-only room by a poster who
// may not moderate it; nothing is stored.
var ErrReadOnly = errors.New("the room is read-only")

// ErrSlowMode is wrapped by a SlowModeError.
var ErrSlowMode = errors.New("slow mode: the user posted too recently")

// SlowModeError refuses a post in slow mode: the user's previous post was
// less than the room's SlowMode ago. Nothing is stored.
type SlowModeError struct {
	RetryAfter time.Duration // until the user may post again
}

func (e *SlowModeError) Error() string {
	return fmt.Sprintf("%v; retry after %v", ErrSlowMode, e.RetryAfter)
}

func (e *SlowModeError) Unwrap() error { return ErrSlowMode }
