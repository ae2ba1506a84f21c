package broker

import (
	"encoding/json"
	"time"

	"roomcast/broker/chat"
)

// ReceiptInterval is the shortest time between two read receipts of one
// user in one room: a user scrolling through a hundred messages moves
// their marker a hundred times, and the room's members see it at most once
// a second, with the newest marker.
const ReceiptInterval = time.Second

// receipts throttles a room's read receipts, per user; guarded by the
// room's mu.
type receipts map[string]*receiptState

type receiptState struct {
	sent    time.Time // when the last receipt went out
	pending []byte    // the newest receipt frame waiting for the interval
	timer   *time.Timer
}

// newReadEvent makes the hub's message of a published read event: its
// Reader is whose marker moved, OwnBody the frame for that user's own
// streams ({"room", "id"}); Body, the receipt for everyone else ({"room",
// "id", "user"}), is set by the room's throttle. ok is false for a
// malformed event.
func (h *Hub) newReadEvent(room string, data []byte) (m *Message, receipt []byte, ok bool) {
	var ev chat.ReadEvent
	if err := json.Unmarshal(data, &ev); err != nil || ev.User == "" || ev.ID == "" {
		return nil, nil, false
	}
	own, _ := json.Marshal(struct {
		Room string `json:"room"`
		ID   string `json:"id"`
	}{ev.Room, ev.ID})
	m = &Message{Room: room, Event: chat.EventRead, Data: own, Reader: ev.User}
	if h.opts.Encoder != nil {
		m.OwnBody = h.opts.Encoder.Event(chat.EventRead, own)
	}
	if ev.Receipts && h.opts.Encoder != nil {
		data, _ := json.Marshal(struct {
			Room string `json:"room"`
			ID   string `json:"id"`
			User string `json:"user"`
		}{ev.Room, ev.ID, ev.User})
		receipt = h.opts.Encoder.Event(chat.EventRead, data)
	}
	return m, receipt, true
}

// throttleReceiptLocked decides whether m, a read event of r, carries its
// receipt now: it does when the reader's last receipt is older than
// ReceiptInterval; else the receipt waits for it, replacing any older one
// waiting, and goes out alone then.
func (r *room) throttleReceiptLocked(m *Message, receipt []byte) {
	if receipt == nil {
		return
	}
	if r.receipts == nil {
		r.receipts = make(receipts)
	}
	st := r.receipts[m.Reader]
	if st == nil {
		st = &receiptState{}
		r.receipts[m.Reader] = st
	}
	now := time.Now()
	if wait := ReceiptInterval - now.Sub(st.sent); wait > 0 {
		st.pending = receipt
		if st.timer == nil {
			reader := m.Reader
			st.timer = time.AfterFunc(wait, func() { r.sendPendingReceipt(reader) })
		}
		return
	}
	// This one is newer than any receipt waiting, which must not follow
	// it.
	if st.timer != nil {
		st.timer.Stop()
	}
	st.pending, st.timer, st.sent = nil, nil, now
	m.Body = receipt
}

// sendPendingReceipt delivers the receipt of reader that waited for the
// interval, unless the room has gone.
func (r *room) sendPendingReceipt(reader string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.receipts[reader]
	if r.gone || st == nil || st.pending == nil {
		return
	}
	m := &Message{Room: r.name, Event: chat.EventRead, Reader: reader, Body: st.pending}
	st.pending, st.timer, st.sent = nil, nil, time.Now()
	r.deliverEventLocked(m)
}

// stopReceiptsLocked stops the room's waiting receipts, as it goes.
func (r *room) stopReceiptsLocked() {
	for _, st := range r.receipts {
		if st.timer != nil {
			st.timer.Stop()
		}
	}
	r.receipts = nil
}
