package broker

import (
	"encoding/json"
	"sync"

	"roomcast/broker/chat"
)

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
	// Reader, on a read event, is the user whose marker moved: that
	// user's own streams write OwnBody, everyone else Body, the read
	// receipt (nil when none is due).
	Reader  string
	OwnBody []byte

	authorOnce sync.Once
	author     string
}

// Author is the user who posted a stored message, "" for a change of one
// or an ephemeral event. It is read from Data on first use, once for every
// listener.
func (m *Message) Author() string {
	m.authorOnce.Do(func() {
		if m.Ephemeral() || chat.IsChange(m.Data) {
			return
		}
		var msg struct {
			User string `json:"user"`
		}
		if json.Unmarshal(m.Data, &msg) == nil {
			m.author = msg.User
		}
	})
	return m.author
}

// Ephemeral reports whether m is an ephemeral event rather than a stored
// message.
func (m *Message) Ephemeral() bool { return m.Event != "" }
