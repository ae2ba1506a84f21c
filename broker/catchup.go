package broker

import (
	"context"

	"roomcast/broker/chat"
)

// Catch-ups of streams that resume read history through Since. A storm of
// resumes (every stream of a process reconnecting at once) must cost about
// one history read per room, not one per stream, and must not flood Redis:
//   - a page read from Redis that connects to the room's ring is backfilled
//     into it, so later resumers from the same or a later position are
//     served from memory;
//   - at most MaxRepairs catch-up reads run at once; the others wait for a
//     turn and look at the ring again first, which by then often has
//     what they need;
//   - concurrent reads of the same (room, position) share one round trip.

// Since returns room's stored messages after from: from the room's ring
// when it holds them, else from Redis. It is the only reader of history for
// catch-ups and repairs.
func (h *Hub) Since(ctx context.Context, name string, from chat.ID) (Page, error) {
	if page, ok := h.fromRing(name, from); ok {
		return page, nil
	}
	return h.readAfter(ctx, name, from, true)
}

// fromRing returns the messages after from if room's ring holds them all.
func (h *Hub) fromRing(name string, from chat.ID) (Page, bool) {
	r := h.lockRoom(name)
	if r == nil {
		return Page{}, false
	}
	msgs, ok := r.ring.after(from, r.last)
	r.mu.Unlock()
	if ok {
		h.stats.ringHits.Add(1)
	}
	return Page{Messages: msgs}, ok
}

// readAfter reads one page of room's history after from, coalescing
// concurrent reads of the same page. A catch-up read waits for a turn
// among at most MaxRepairs, then is served by the ring if it can be, and
// backfills the ring with what it reads.
func (h *Hub) readAfter(ctx context.Context, name string, from chat.ID, catchUp bool) (Page, error) {
	key := name + "\x00" + from.String()
	if catchUp {
		key = "c\x00" + key // a repair must not be answered from the ring
	}
	ch := h.reads.DoChan(key, func() (any, error) {
		// Shared by every caller: no single caller's cancellation ends it.
		ctx := context.WithoutCancel(ctx)
		if catchUp {
			h.readQ <- struct{}{} // waiting is fine; failing for a crowd is not
			defer func() { <-h.readQ }()
			if page, ok := h.fromRing(name, from); ok {
				return page, nil
			}
		}
		h.stats.historyHits.Add(1)
		ctx, cancel := context.WithTimeout(ctx, h.opts.RedisTimeout)
		defer cancel()
		page, err := h.readPage(ctx, name, from)
		if err == nil && catchUp {
			h.backfill(name, page)
		}
		return page, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Page{}, res.Err
		}
		return res.Val.(Page), nil
	case <-ctx.Done():
		return Page{}, ctx.Err()
	}
}

// backfill puts the messages of page that lead, unbroken, up to room's
// ring (or, with the ring empty, up to the room's last delivered message)
// in front of the ring. A page that no longer connects, because the ring
// moved on or the room changed epoch while it was read, is left out.
func (h *Hub) backfill(name string, page Page) {
	if page.Reset != nil || len(page.Messages) == 0 {
		return
	}
	r := h.lockRoom(name)
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	// The page's message right before the ring's oldest, or the last one
	// delivered when the ring is empty.
	leadsOn := func(m *Message) bool { return m.ID == r.last && r.last.Epoch != "" }
	if o := r.ring.oldest(); o != nil {
		leadsOn = func(m *Message) bool { return o.ID.Follows(m.ID) && m.ID.Epoch != "" }
	}
	end := -1
	for i, m := range page.Messages {
		if leadsOn(m) {
			end = i
			break
		}
	}
	if end < 0 {
		return
	}
	start := end
	for start > 0 && page.Messages[start].ID.Follows(page.Messages[start-1].ID) {
		start--
	}
	r.ring.prepend(page.Messages[start : end+1])
}
