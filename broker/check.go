package broker

import (
	"context"
	"time"

	"roomcast/broker/chat"
)

// checkPeriodically runs checkRooms every DeliveryCheckInterval while the
// hub is ready, and whenever asked to (askCheck), until ctx ends.
func (h *Hub) checkPeriodically(ctx context.Context) {
	t := time.NewTicker(h.opts.DeliveryCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if h.Ready() == nil {
				h.checkRooms(ctx, nil)
			}
		case <-h.checkNow:
			h.checkRooms(ctx, nil)
		case <-ctx.Done():
			return
		}
	}
}

// askCheck has checkPeriodically check every room at once.
func (h *Hub) askCheck() {
	select {
	case h.checkNow <- struct{}{}:
	default: // a check is already asked for
	}
}

// checkRooms compares the position of every room with local listeners (or
// of only those named) with Redis, and has each room reconcile itself
// (room.reconcileLocked): the only way to notice a message lost in a room
// that stays quiet afterwards, and how rooms that a subscription lost and
// regained are repaired. Rooms without local listeners are ignored. It
// blocks for one Redis read.
func (h *Hub) checkRooms(ctx context.Context, only []string) {
	var (
		rooms  []*room
		names  []string
		before []chat.ID // what each room had before the read
	)
	add := func(r *room) { // r.mu held
		if !r.repairing && !r.gone {
			rooms = append(rooms, r)
			names = append(names, r.name)
			before = append(before, r.last)
		}
	}
	if only == nil {
		for _, r := range h.rooms.all() {
			r.mu.Lock()
			add(r)
			r.mu.Unlock()
		}
	} else {
		for _, name := range only {
			if r := h.lockRoom(name); r != nil {
				add(r)
				r.mu.Unlock()
			}
		}
	}
	if len(names) == 0 {
		return
	}
	ctx2, cancel := context.WithTimeout(ctx, h.opts.RedisTimeout)
	ids, err := h.opts.History.Positions(ctx2, names)
	cancel()
	if err != nil {
		h.log.Warn("checking room positions", "err", err)
		return
	}
	for i, r := range rooms {
		r.mu.Lock()
		delivered := r.last
		wentBack := r.reconcileLocked(ctx, before[i], ids[i])
		r.mu.Unlock()
		if wentBack { // logged once the lock is released
			h.log.Warn("room sequence went back: Redis lost acknowledged writes", "room", r.name,
				"delivered", delivered.String(), "redis", ids[i].String())
		}
	}
}
