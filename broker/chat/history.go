package chat

// Direction says which way a Query reads from its cursor.
type Direction int

// The directions of a Query.
const (
	Latest Direction = iota // the newest messages; no cursor
	Before                  // messages older than the cursor
	After                   // messages newer than the cursor
)

// Query asks for one page of a room's history.
type Query struct {
	Direction Direction
	Cursor    ID // ignored for Latest
	Limit     int
}

// Page is one page of history.
type Page struct {
	// Messages are the page's entries ascending by position, as stored:
	// messages in their latest versions and, on an After page, the changes
	// (edits, deletes) after the cursor, which EntryOf tells apart.
	Messages [][]byte
	// Position is the newest position of the room the page reflects: a
	// reader that follows the room from it after reading the page misses
	// nothing. Zero for a room without messages.
	Position ID
	HasMore  bool   // more messages lie beyond the page in its direction
	Reset    *Reset // set when an After cursor could not be honoured
}

// Reset explains why a reader positioned at a cursor cannot be given every
// message after it.
type Reset struct {
	Reason         string `json:"reason"`
	Detail         string `json:"detail"`
	LastEventID    string `json:"last_event_id"`
	FirstAvailable string `json:"first_available_id,omitempty"`
}

// The reasons of a Reset.
const (
	ResetEpochChanged = "epoch_changed" // Redis lost the room's state since the cursor
	ResetTrimmed      = "trimmed"       // messages after the cursor fell out of history
	ResetAhead        = "ahead"         // the cursor is past the room's last message, in its epoch
)
