package broker

import (
	"context"
	"fmt"
	"sync"

	"roomcast/broker/chat"
)

// maxPending bounds the live messages held while a room is repaired; later
// ones are read back from history instead.
const maxPending = 1024

// room is a room with local listeners, and the owner of its sequence: it
// delivers each message that follows the last one delivered, holds live
// messages while its position is read or a gap is repaired, and repairs
// gaps from history (repair.go). Everything but hub and name is guarded by
// mu.
type room struct {
	hub  *Hub
	name string

	mu        sync.Mutex
	gone      bool                 // taken out of the registry; a new room of this name may exist
	subs      map[Listener]chat.ID // each listener's start
	list      []Listener           // subs' listeners for fan-out; nil when stale
	inited    bool                 // a listener has started reading the room's position
	last      chat.ID              // last message delivered to subs
	ready     chan struct{}        // closed once last is known
	initErr   error                // why last could not be read
	repairing bool                 // last is being found or a gap repaired; pending holds live messages
	pending   []*Message
	ring      ring
	receipts  receipts // read receipts waiting for their interval
}

func newRoom(h *Hub, name string) *room {
	return &room{hub: h, name: name, subs: make(map[Listener]chat.ID), ready: make(chan struct{}),
		repairing: true, ring: newRing(h.opts.Ring)}
}

// listenersLocked returns the room's listeners as a slice that is copied
// when membership changed since the last call, not on every change: a burst
// of joins costs one copy, and a fan-out iterates a slice, not a map. A
// listener dropped during a fan-out stays in the slice being iterated, but
// is not in the next one.
func (r *room) listenersLocked() []Listener {
	if r.list == nil && len(r.subs) > 0 {
		r.list = make([]Listener, 0, len(r.subs))
		for l := range r.subs {
			r.list = append(r.list, l)
		}
	}
	return r.list
}

// receiveLocked places one live message in the room's sequence: an
// ephemeral event goes to whoever takes it; a stored message is delivered
// if it follows the last one, held while the room is repairing, ignored if
// delivered already, and held behind a repair if it leaves a gap. It
// returns how many listeners it dropped for being slow, for the caller to
// log once the lock is released.
func (r *room) receiveLocked(ctx context.Context, m *Message) (slow int) {
	switch {
	case m.Ephemeral():
		r.deliverEventLocked(m)
	case r.repairing:
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, m)
		}
	case m.ID.Covered(r.last):
	case m.ID.Follows(r.last):
		slow = r.deliverLocked(m)
	default:
		r.pending = append(r.pending, m)
		r.startRepairLocked(ctx)
	}
	return slow
}

// deliverEventLocked gives an ephemeral event to whoever takes it.
func (r *room) deliverEventLocked(m *Message) {
	taken := 0
	for _, l := range r.listenersLocked() {
		if l.Deliver(m) {
			taken++
		}
	}
	r.hub.stats.delivered.Add(uint64(taken))
}

// deliverLocked gives m, which follows r.last, to every listener without
// ever blocking and returns how many it dropped for being slow.
func (r *room) deliverLocked(m *Message) (slow int) {
	r.last = m.ID
	r.ring.add(m)
	taken := 0
	for _, l := range r.listenersLocked() {
		if l.Deliver(m) {
			taken++
			continue
		}
		slow++
		r.dropLocked(l, ErrSlow)
	}
	r.hub.stats.delivered.Add(uint64(taken)) // once per message: the counter is shared by every room
	return slow
}

// flushLocked delivers the pending messages that continue the sequence
// and reports whether all of them did; if not, r stays repairing and the
// rest stays pending.
func (r *room) flushLocked() (slow int, done bool) {
	for i, m := range r.pending {
		switch {
		case m.ID.Covered(r.last):
		case m.ID.Follows(r.last):
			slow += r.deliverLocked(m)
		default:
			r.pending = r.pending[i:]
			return slow, false
		}
	}
	r.pending = nil
	r.repairing = false
	return slow, true
}

// readPosition reads the position of a room that just got its first local
// listener; messages arriving meanwhile are held in r.pending.
func (r *room) readPosition(ctx context.Context) {
	h := r.hub
	// Others may be waiting for this read: the first listener leaving
	// must not fail it for them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.RedisTimeout)
	defer cancel()
	ids, err := h.opts.History.Positions(ctx, []string{r.name})
	slow := 0
	defer func() { h.logSlow(r.name, slow) }() // once the lock is released
	r.mu.Lock()
	defer r.mu.Unlock()
	defer close(r.ready)
	if err != nil {
		r.initErr = fmt.Errorf("read room position: %w", err)
		for l := range r.subs {
			r.removeLocked(l)
		}
		return
	}
	r.last = ids[0]
	for l := range r.subs {
		r.subs[l] = r.last // all joined while the position was unknown
	}
	var done bool
	if slow, done = r.flushLocked(); !done {
		// A message went missing right behind the position just read: have
		// the hub compare the room with Redis, which repairs it from history.
		r.pending, r.repairing = nil, false
		h.askCheck()
	}
}

// reconcileLocked compares the room with its position in Redis, read when
// the room's last was before: a room behind Redis is repaired; one that
// Redis no longer knows (expired, lost) waits for its next epoch; one whose
// sequence went back within its epoch (a failover lost writes) drops its
// listeners with ErrReset, so that they resume and are told, and reports
// wentBack for the caller to log once the lock is released.
func (r *room) reconcileLocked(ctx context.Context, before, inRedis chat.ID) (wentBack bool) {
	switch {
	case r.gone || r.last != before:
		// Gone, or delivered more since the read: look again next time.
	case inRedis == r.last:
	case inRedis.Epoch == "":
		r.last = chat.ID{} // its next message starts a new epoch
		r.ring.clear()
	case inRedis.Epoch == r.last.Epoch && inRedis.Seq < r.last.Seq:
		r.ring.clear()
		for l := range r.subs {
			r.dropLocked(l, ErrReset)
		}
		return true
	default: // behind Redis, or Redis has another epoch
		r.startRepairLocked(ctx)
	}
	return false
}

// removeLocked takes l out of r, taking r out of the registry if left
// empty.
func (r *room) removeLocked(l Listener) bool {
	if _, ok := r.subs[l]; !ok {
		return false
	}
	delete(r.subs, l)
	r.list = nil
	r.hub.stats.subscribers.Add(-1)
	if len(r.subs) == 0 {
		r.hub.unregisterLocked(r)
	}
	return true
}

// dropLocked removes l from r and tells it why.
func (r *room) dropLocked(l Listener, err error) {
	if !r.removeLocked(l) {
		return
	}
	if err == ErrSlow {
		r.hub.stats.slowDrops.Add(1)
	}
	l.Dropped(err)
}
