package broker

import "roomcast/broker/chat"

// Message is one room entry as the hub delivers it: a stored message, a
// change of one (an edit or delete, which has a position of its own in the
// same sequence: chat.EntryOf), or an ephemeral event. The hub orders,
// rings and repairs messages and changes alike, by ID. A Message is shared
// by every listener of its room: treat it as read-only.
type Message struct {
	Room string
	ID   chat.ID // the entry's position; zero for an ephemeral event
	// Event names an ephemeral event (typing, join, …): published on the
	// room's channel as "!<event>\n<json>", never stored, never sequenced
	// or repaired, and dropped for a listener that cannot take it. "" for
	// a stored message.
	Event string
	Data  []byte // the entry JSON exactly as stored, or the event's JSON
	// IDLine and Body are the message's frame, encoded once by the hub's
	// Encoder and shared by every listener: IDLine names the message's
	// position (nil for an ephemeral event), Body is the rest. A stream of
	// one room writes both; a stream of several rooms writes its own id
	// line, then Body.
	IDLine []byte
	Body   []byte
}

// Ephemeral reports whether m is an ephemeral event rather than a stored
// message.
func (m *Message) Ephemeral() bool { return m.Event != "" }
