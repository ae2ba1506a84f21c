package broker

import "roomcast/broker/chat"

// Message is one room message as the hub delivers it. A Message is shared by
// every listener of its room: treat it as read-only.
type Message struct {
	Room string
	ID   chat.ID // zero for an ephemeral event
	// Event names an ephemeral event (typing, join, …): published on the
	// room's channel as "!<event>\n<json>", never stored, never sequenced
	// or repaired, and dropped for a listener that cannot take it. "" for
	// a stored message.
	Event string
	Data  []byte // the message JSON exactly as stored, or the event's JSON
	Frame []byte // encoded once for the wire by the hub's Encode option
}

// Ephemeral reports whether m is an ephemeral event rather than a stored
// message.
func (m *Message) Ephemeral() bool { return m.Event != "" }
