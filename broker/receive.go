package broker

import (
	"context"
	"fmt"
	"strings"

	"roomcast/broker/chat"
)

// Encoder gives each message its wire bytes, once per message, for every
// listener of its room to share (api/sse.Frames).
type Encoder interface {
	// Message returns a stored entry's id line (its position) and body
	// (the rest of its frame), so that a stream with ids of its own can
	// write the body after its own id line. The entry is a message or a
	// change of one (chat.EntryOf tells them apart).
	Message(id chat.ID, data []byte) (idLine, body []byte)
	// Event returns the frame of an ephemeral event, which has no id.
	Event(name string, data []byte) []byte
}

// Receive takes one Pub/Sub message of this deployment, as the hub's
// subscriber hands it over: a payload starting with '{' is a stored
// message, one starting with '!' an ephemeral event "!<name>\n<json>".
// Probes and malformed payloads are ignored. It never blocks on a
// listener; call it from one goroutine per subscription. Exported for
// feeding a hub that has no subscriber (New with a nil PubSubber), as
// tests and benchmarks do.
func (h *Hub) Receive(ctx context.Context, channel, payload string) {
	name, ok := h.opts.Keys.RoomOf(channel)
	if !ok {
		return // a probe, ours or another hub's
	}
	if strings.HasPrefix(payload, "!") {
		event, data, ok := strings.Cut(payload[1:], "\n")
		if !ok || event == "" {
			h.log.Warn("ignoring malformed event", "channel", channel)
			return
		}
		if event == chat.EventRead {
			h.dispatchRead(ctx, name, []byte(data))
			return
		}
		m := &Message{Room: name, Event: event, Data: []byte(data)}
		if h.opts.Encoder != nil {
			m.Body = h.opts.Encoder.Event(event, m.Data)
		}
		h.dispatch(ctx, m)
		return
	}
	m, err := h.newMessage(name, []byte(payload))
	if err != nil {
		h.log.Warn("ignoring malformed message", "channel", channel, "err", err)
		return
	}
	h.dispatch(ctx, m)
}

// newMessage parses a stored message of room and encodes it.
func (h *Hub) newMessage(room string, data []byte) (*Message, error) {
	id, err := chat.IDOf(data)
	if err != nil {
		return nil, fmt.Errorf("message in room %q: %w", room, err)
	}
	m := &Message{Room: room, ID: id, Data: data}
	if h.opts.Encoder != nil {
		m.IDLine, m.Body = h.opts.Encoder.Message(id, data)
	}
	return m, nil
}

// dispatchRead hands a read event to its room: to the reader's own
// streams at once, and as a receipt to the others at most once per
// ReceiptInterval per reader.
func (h *Hub) dispatchRead(ctx context.Context, room string, data []byte) {
	m, receipt, ok := h.newReadEvent(room, data)
	if !ok {
		h.log.Warn("ignoring malformed read event", "room", room)
		return
	}
	h.stats.received.Add(1)
	r := h.lockRoom(room)
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	r.throttleReceiptLocked(m, receipt)
	r.deliverEventLocked(m)
}

// dispatch hands one live message to its room, if it has local listeners.
func (h *Hub) dispatch(ctx context.Context, m *Message) {
	h.stats.received.Add(1)
	r := h.lockRoom(m.Room)
	if r == nil {
		return
	}
	slow := r.receiveLocked(ctx, m)
	r.mu.Unlock()
	h.logSlow(m.Room, slow)
}

func (h *Hub) logSlow(room string, n int) {
	if n > 0 {
		h.log.Warn("dropping slow listeners", "room", room, "count", n)
	}
}
