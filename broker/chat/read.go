package chat

import "errors"

// Read state: how far each user has read each room.
var (
	// ErrEmptyRoom is returned for a read marker in a room that has no
	// messages.
	ErrEmptyRoom = errors.New("the room has no messages")
	// ErrUnknownMessage is returned for a read marker at an id that names
	// no message of the room: of another epoch, or after its last message.
	ErrUnknownMessage = errors.New("no such message in the room")
)

// Mark is a user's read marker in a room after a call that may move it.
type Mark struct {
	LastRead ID    // the newest message the user has read
	Unread   int64 // retained messages after it, tombstones and the user's own not counted
	Moved    bool  // this call moved the marker
}

// ReadState is a user's read state in one room.
type ReadState struct {
	Room     string
	LastRead ID // zero when the user has no marker in the room
	// Unread counts the retained messages after LastRead (every retained
	// one without a marker), tombstones and the user's own not counted.
	Unread      int64
	LastMessage []byte // the JSON of the room's newest message; nil when it has none
}

// ReadEvent is the data of a read event as the mark script publishes it:
// User's marker in Room moved to ID; Receipts tells whether the room is
// small enough for its other members to be told.
type ReadEvent struct {
	Room     string `json:"room"`
	ID       string `json:"id"`
	User     string `json:"user"`
	Receipts bool   `json:"receipts"`
}
