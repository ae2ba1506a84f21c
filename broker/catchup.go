package broker

import (
	"context"
	"slices"

	"roomcast/broker/chat"
)

// Catch-ups of streams that resume read history through Since. A storm of
// resumes (every stream of a process reconnecting at once) must cost about
// one history read per room, not one per stream, and must not flood Redis:
//   - a page read from Redis that connects to the room's ring is backfilled
//     into it, so later resumers from the same or a later position are
//     served from memory;
//   - while a catch-up read of a room is in flight, every catch-up of that
//     room from the same position, or from a later one of its epoch,
//     waits for it instead of reading again (the read covers its range),
//     then takes its messages from the ring or from the shared page;
//   - at most MaxRepairs catch-up reads run at once; the others wait for a
//     turn and look at the ring again first, which by then often has
//     what they need.

// catchUpRead is one history read of a room for catch-ups, after from.
// page and err are set before done is closed.
type catchUpRead struct {
	from chat.ID
	done chan struct{}
	page Page
	err  error
}

// covers reports whether the read answers a catch-up after from: from is
// its position, or a later one of the same epoch.
func (rd *catchUpRead) covers(from chat.ID, exact bool) bool {
	if rd.from == from {
		return true
	}
	return !exact && rd.from.Epoch != "" && from.Epoch == rd.from.Epoch && from.Seq > rd.from.Seq
}

// Since returns room's stored messages after from: from the room's ring
// when it holds them, else from Redis. It is the only reader of history for
// catch-ups.
func (h *Hub) Since(ctx context.Context, name string, from chat.ID) (Page, error) {
	if page, ok := h.fromRing(name, from); ok {
		return page, nil
	}
	for exact := false; ; exact = true {
		rd := h.joinCatchUp(ctx, name, from, exact)
		select {
		case <-rd.done:
		case <-ctx.Done():
			return Page{}, ctx.Err()
		}
		if rd.err != nil {
			return Page{}, rd.err
		}
		if rd.from == from {
			return rd.page, nil
		}
		if page, ok := h.fromRing(name, from); ok { // backfilled by the read
			return page, nil
		}
		if page, ok := rd.page.after(from); ok {
			return page, nil
		}
		// A reset, or a page that ends before from: read from from itself.
	}
}

// joinCatchUp returns the catch-up read of room in flight that covers
// from, or starts one after from. The read is shared by every caller: no
// single caller's cancellation ends it.
func (h *Hub) joinCatchUp(ctx context.Context, name string, from chat.ID, exact bool) *catchUpRead {
	h.catchUpMu.Lock()
	defer h.catchUpMu.Unlock()
	for _, rd := range h.catchUps[name] {
		if rd.covers(from, exact) {
			return rd
		}
	}
	rd := &catchUpRead{from: from, done: make(chan struct{})}
	h.catchUps[name] = append(h.catchUps[name], rd)
	go h.runCatchUp(context.WithoutCancel(ctx), name, rd)
	return rd
}

// runCatchUp does rd: it waits for a turn among at most MaxRepairs, is
// then served by the ring if it can be, and backfills the ring with what
// it reads. It takes rd out of the reads in flight before it tells the
// waiters.
func (h *Hub) runCatchUp(ctx context.Context, name string, rd *catchUpRead) {
	defer close(rd.done)
	defer func() {
		h.catchUpMu.Lock()
		defer h.catchUpMu.Unlock()
		reads := h.catchUps[name]
		if i := slices.Index(reads, rd); i >= 0 {
			reads = slices.Delete(reads, i, i+1)
		}
		if len(reads) == 0 {
			delete(h.catchUps, name)
		} else {
			h.catchUps[name] = reads
		}
	}()
	h.readQ <- struct{}{} // waiting is fine; failing for a crowd is not
	defer func() { <-h.readQ }()
	if page, ok := h.fromRing(name, rd.from); ok {
		rd.page = page
		return
	}
	h.stats.historyHits.Add(1)
	ctx, cancel := context.WithTimeout(ctx, h.opts.RedisTimeout)
	defer cancel()
	rd.page, rd.err = h.readPage(ctx, name, rd.from)
	if rd.err == nil {
		h.backfill(name, rd.page)
	}
}

// after returns the part of p, a page read from an earlier position of
// from's epoch, that follows from; false when p cannot answer for from: it
// is a reset (which names its own position), or it ends before from with
// more to read.
func (p Page) after(from chat.ID) (Page, bool) {
	if p.Reset != nil {
		return Page{}, false
	}
	i := 0
	for i < len(p.Messages) && p.Messages[i].ID.Covered(from) {
		i++
	}
	if i == len(p.Messages) && p.HasMore {
		return Page{}, false
	}
	return Page{Messages: p.Messages[i:], HasMore: p.HasMore}, true
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

// readAfter reads one page of room's history after from for a repair,
// coalescing concurrent reads of the same page. A repair is never answered
// from the ring, which holds only what was delivered.
func (h *Hub) readAfter(ctx context.Context, name string, from chat.ID) (Page, error) {
	ch := h.reads.DoChan(name+"\x00"+from.String(), func() (any, error) {
		// Shared by every caller: no single caller's cancellation ends it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.RedisTimeout)
		defer cancel()
		h.stats.historyHits.Add(1)
		return h.readPage(ctx, name, from)
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
