package broker

import (
	"context"

	"roomcast/broker/chat"
)

// Page is a run of a room's stored messages after a position, as Since
// returns it. Its messages are shared with other readers: read-only.
type Page struct {
	Messages []*Message
	// Reset is set when the position asked for is no longer in the room's
	// history: the messages then start afresh.
	Reset   *chat.Reset
	HasMore bool
}

// pageLimit is the number of messages of one history read.
const pageLimit = 200

func (h *Hub) readPage(ctx context.Context, name string, from chat.ID) (Page, error) {
	page, err := h.opts.History.History(ctx, name, chat.Query{
		Direction: chat.After, Cursor: from, Limit: pageLimit,
	})
	if err != nil {
		return Page{}, err
	}
	out := Page{HasMore: page.HasMore, Reset: page.Reset, Messages: make([]*Message, 0, len(page.Messages))}
	for _, data := range page.Messages {
		m, err := h.newMessage(name, data)
		if err != nil {
			return Page{}, err
		}
		out.Messages = append(out.Messages, m)
	}
	return out, nil
}

// startRepairLocked marks r repairing and reads the messages it missed from
// history in the background.
func (r *room) startRepairLocked(ctx context.Context) {
	if r.repairing {
		return
	}
	r.repairing = true
	h := r.hub
	h.stats.repairs.Add(1)
	h.repairs.Add(1)
	go func() {
		defer h.repairs.Done()
		r.repair(ctx)
	}()
}

// repair reads room history after r.last and delivers it until r's pending
// live messages continue the sequence. It retries until ctx ends or the room
// loses its last listener. At most MaxRepairs reads run at once, so that a
// resubscribe that repairs every room cannot flood Redis.
func (r *room) repair(ctx context.Context) {
	h := r.hub
	backoff := newBackoff()
	for {
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			return
		}
		from := r.last
		r.mu.Unlock()

		select {
		case h.repairQ <- struct{}{}:
		case <-ctx.Done():
			r.abandonRepair()
			return
		}
		page, err := h.readAfter(ctx, r.name, from)
		<-h.repairQ
		if err != nil {
			h.log.Warn("repairing room from history", "room", r.name, "err", err)
			if !backoff.wait(ctx) {
				r.abandonRepair()
				return
			}
			continue
		}
		backoff.reset()

		slow, done, dropped := r.applyRepair(from, page)
		h.logSlow(r.name, slow)
		if dropped > 0 {
			h.log.Warn("dropping live messages that history cannot connect", "room", r.name, "pending", dropped)
		}
		if done {
			return
		}
	}
}

// abandonRepair ends a repair cut short by its context (the subscription
// that started it went away, e.g. a shard connection that failed), so that
// the room's next message or check can repair it anew instead of leaving it
// repairing for good. What was pending is in history, which that repair
// reads.
func (r *room) abandonRepair() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.repairing, r.pending = false, nil
}

// applyRepair delivers a page read by repair and reports whether the room
// is whole again.
func (r *room) applyRepair(from chat.ID, page Page) (slow int, done bool, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return 0, true, 0
	}
	for _, m := range page.Messages {
		if !m.ID.Covered(r.last) {
			slow += r.deliverLocked(m)
		}
	}
	if page.HasMore {
		return slow, false, 0
	}
	s, done := r.flushLocked()
	slow += s
	if !done && r.last == from {
		// History has nothing that leads to what is pending: Redis lost
		// it, or it belongs to a state Redis no longer has. Reading
		// again would spin; the next message or check repairs anew.
		dropped = len(r.pending)
		r.pending, r.repairing = nil, false
		done = true
	}
	return slow, done, dropped
}
