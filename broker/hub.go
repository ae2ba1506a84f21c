// Package broker delivers room messages published on Redis to the local
// subscribers of each room. One Hub per process holds ONE Redis connection
// subscribed to every room with PSUBSCRIBE and fans each message out to
// bounded per-subscriber queues, repairing gaps from the room's history.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"roomcast/redisscripts"
)

// History is the read access to rooms that the hub needs to give every
// subscriber a gap-free sequence.
type History interface {
	Positions(ctx context.Context, rooms []string) ([]redisscripts.ID, error)
	History(ctx context.Context, room string, q redisscripts.Query) (redisscripts.Page, error)
}

// Options configure a Hub.
type Options struct {
	Keys    redisscripts.Keys
	History History
	// Encode turns a message into the bytes every subscriber writes; it runs
	// once per message.
	Encode func(*Message) []byte
	// Buffer is each subscriber's queue length; a subscriber whose queue is
	// full is dropped with ErrSlow.
	Buffer int
	// CheckInterval is how often the hub, when no message arrived, proves
	// its subscription still works and compares each room's position with
	// Redis.
	CheckInterval time.Duration
	// Timeout bounds each Redis operation of the hub.
	Timeout time.Duration
	Logger  *slog.Logger
	// Shards, when set, selects the sharded broker mode: instead of one
	// PSUBSCRIBE, each room with local subscribers is SSUBSCRIBEd on its
	// shard (one connection per shard). Messages must then be published
	// with SPUBLISH on Keys.ShardChannel (redisscripts.StoreOptions.Sharded).
	Shards ShardRouter
	// Linger is how long a room stays subscribed in sharded mode after its
	// last local subscriber left; 0 means DefaultLinger.
	Linger time.Duration
}

// Hub fans out room messages from one shared Redis subscription. Create it
// with New, start it with Run, and Subscribe to rooms while it runs.
type Hub struct {
	opts   Options
	pubsub PubSubber
	log    *slog.Logger
	probe  string // this hub's probe channel

	mu          sync.Mutex
	rooms       map[string]*room
	running     bool
	closed      bool
	healthy     error         // nil while the subscription is known to receive
	started     chan struct{} // closed when the first subscription is confirmed
	checkNow    chan struct{} // asks Run to check room positions at once
	everHealthy bool

	repairs sync.WaitGroup
	stats   Stats // counters, under mu

	shards *shardSubscriber // sharded mode only (BROKER_MODE=sharded)
}

// Stats counts what a hub has done since it was created.
type Stats struct {
	Rooms       int    // rooms with local subscribers now
	Subscribers int    // open subscriptions now
	Received    uint64 // messages received from Redis Pub/Sub
	Delivered   uint64 // messages queued to subscribers, one per subscriber
	SlowDrops   uint64 // subscriptions dropped because their queue was full
	Repairs     uint64 // gaps repaired from history
	Reconnects  uint64 // times the Redis subscription was re-established
}

// Stats returns the hub's current counts.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Rooms = len(h.rooms)
	return s
}

// room is the hub's state for a room with local subscribers.
type room struct {
	subs    map[*Subscription]struct{}
	last    redisscripts.ID // last message delivered to subs
	ready   chan struct{}   // closed once last is known
	busy    bool            // last is being found or a gap repaired; pending collects live messages
	pending []*Message
}

// maxPending bounds the live messages held while a room is repaired; later
// ones are read back from history instead.
const maxPending = 1024

// ErrNotReady is returned by Ready while the hub's subscription is not
// known to be receiving.
var ErrNotReady = errors.New("broker subscription not receiving")

// New returns a hub that subscribes through pubsub.
func New(pubsub PubSubber, opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		opts:     opts,
		pubsub:   pubsub,
		log:      opts.Logger,
		probe:    opts.Keys.ProbeChannel(randomName()),
		rooms:    make(map[string]*room),
		healthy:  ErrNotReady,
		started:  make(chan struct{}),
		checkNow: make(chan struct{}, 1),
	}
	if opts.Shards != nil { // sharded mode: call site 1 of 5 (see sharded.go)
		h.shards = newShardSubscriber(h, opts)
	}
	return h
}

// Ready returns nil while the hub's subscription receives messages, and an
// error wrapping ErrNotReady otherwise.
func (h *Hub) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.healthy
}

// WaitStarted blocks until Run has subscribed for the first time, so that
// no message published after it returns can be missed; it returns ctx's
// error if ctx ends first.
func (h *Hub) WaitStarted(ctx context.Context) error {
	select {
	case <-h.started:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the redis subscription: %w", ctx.Err())
	}
}

// Subscribe starts a subscription to room. The first subscriber of a room
// in this process reads the room's position from Redis, so Subscribe can
// fail with redisscripts.ErrUnavailable; it returns ErrClosed once the hub
// has stopped. The caller must Close the subscription.
func (h *Hub) Subscribe(ctx context.Context, name string) (*Subscription, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	r, found := h.rooms[name]
	if !found {
		r = &room{subs: make(map[*Subscription]struct{}), ready: make(chan struct{}), busy: true}
		h.rooms[name] = r
	}
	// The subscription starts after the last message delivered to the room;
	// initRoom corrects this for a room whose position is still unknown.
	sub := &Subscription{hub: h, room: name, start: r.last, ch: make(chan *Message, h.opts.Buffer)}
	r.subs[sub] = struct{}{}
	h.stats.Subscribers++
	h.mu.Unlock()

	if !found {
		if h.shards != nil { // sharded mode: call site 2 of 5, first local subscriber
			h.shards.open(ctx, name)
		}
		h.initRoom(ctx, name, r)
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		sub.Close()
		return nil, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub.err != nil {
		return nil, sub.err
	}
	return sub, nil
}

// initRoom reads the position of a room that just got its first local
// subscriber; messages arriving meanwhile wait in r.pending.
func (h *Hub) initRoom(ctx context.Context, name string, r *room) {
	// Others may be waiting for this read: the first subscriber leaving
	// must not fail it for them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.Timeout)
	defer cancel()
	ids, err := h.opts.History.Positions(ctx, []string{name})
	h.mu.Lock()
	defer h.mu.Unlock()
	defer close(r.ready)
	if err != nil {
		for s := range r.subs {
			h.dropLocked(s, fmt.Errorf("read room position: %w", err))
		}
		return
	}
	r.last = ids[0]
	for s := range r.subs {
		s.start = r.last // all joined while the position was unknown
	}
	if !h.flushPendingLocked(r) {
		// A message went missing right behind the position just read: have
		// Run compare the room with Redis, which repairs it from history.
		r.pending, r.busy = nil, false
		select {
		case h.checkNow <- struct{}{}:
		default: // a check is already asked for
		}
	}
}

// dropLocked removes s from its room and closes its channel with reason err.
// Dropping a subscription that is already gone does nothing.
func (h *Hub) dropLocked(s *Subscription, err error) {
	r := h.rooms[s.room]
	if r == nil {
		return
	}
	if _, ok := r.subs[s]; !ok {
		return
	}
	delete(r.subs, s)
	h.stats.Subscribers--
	if err == ErrSlow {
		h.stats.SlowDrops++
	}
	s.err = err
	close(s.ch)
	if len(r.subs) == 0 {
		delete(h.rooms, s.room)
		if h.shards != nil { // sharded mode: call site 3 of 5, last local subscriber gone
			h.shards.close(s.room)
		}
	}
}

// deliverLocked sends m to every subscriber of r without ever blocking.
func (h *Hub) deliverLocked(r *room, m *Message) {
	r.last = m.ID
	for s := range r.subs {
		select {
		case s.ch <- m:
			h.stats.Delivered++
		default:
			h.log.Warn("dropping slow subscriber", "room", m.Room, "queue", cap(s.ch))
			h.dropLocked(s, ErrSlow)
		}
	}
}

// dispatch routes one live message to its room.
func (h *Hub) dispatch(ctx context.Context, m *Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats.Received++
	r := h.rooms[m.Room]
	switch {
	case r == nil:
	case r.busy:
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, m)
		}
	case m.ID.Covered(r.last):
	case m.ID.Follows(r.last):
		h.deliverLocked(r, m)
	default:
		r.pending = append(r.pending, m)
		h.startRepairLocked(ctx, m.Room, r)
	}
}

// flushPendingLocked delivers the pending messages that continue r's
// sequence and reports whether all of them did; if not, r stays busy and
// the rest stays pending.
func (h *Hub) flushPendingLocked(r *room) (done bool) {
	for i, m := range r.pending {
		switch {
		case m.ID.Covered(r.last):
		case m.ID.Follows(r.last):
			h.deliverLocked(r, m)
		default:
			r.pending = r.pending[i:]
			return false
		}
	}
	r.pending = nil
	r.busy = false
	return true
}

// startRepairLocked marks r busy and reads the messages it missed from
// history in the background.
func (h *Hub) startRepairLocked(ctx context.Context, name string, r *room) {
	if r.busy {
		return
	}
	r.busy = true
	h.stats.Repairs++
	h.repairs.Add(1)
	go func() {
		defer h.repairs.Done()
		h.repair(ctx, name, r)
	}()
}

// repair reads room history after r.last and delivers it until r's pending
// live messages continue the sequence. It retries until ctx ends or the room
// loses its last subscriber.
func (h *Hub) repair(ctx context.Context, name string, r *room) {
	backoff := newBackoff()
	for {
		h.mu.Lock()
		if h.rooms[name] != r {
			h.mu.Unlock()
			return
		}
		from := r.last
		h.mu.Unlock()

		page, err := h.readAfter(ctx, name, from)
		if err != nil {
			h.log.Warn("repairing room from history", "room", name, "err", err)
			if !backoff.wait(ctx) {
				return
			}
			continue
		}
		backoff.reset()

		h.mu.Lock()
		if h.rooms[name] != r {
			h.mu.Unlock()
			return
		}
		for _, m := range page.messages {
			if !m.ID.Covered(r.last) {
				h.deliverLocked(r, m)
			}
		}
		done := !page.hasMore && h.flushPendingLocked(r)
		if !done && !page.hasMore && r.last == from {
			// History has nothing that leads to what is pending: Redis lost
			// it, or it belongs to a state Redis no longer has. Reading
			// again would spin; the next message or check repairs anew.
			h.log.Warn("dropping live messages that history cannot connect", "room", name,
				"delivered", r.last.String(), "pending", len(r.pending))
			r.pending, r.busy = nil, false
			done = true
		}
		h.mu.Unlock()
		if done {
			return
		}
	}
}

type historyPage struct {
	messages []*Message
	hasMore  bool
}

// readAfter reads one page of room's history after from, as Messages.
func (h *Hub) readAfter(ctx context.Context, name string, from redisscripts.ID) (historyPage, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	page, err := h.opts.History.History(ctx, name, redisscripts.Query{
		Direction: redisscripts.After, Cursor: from, Limit: 200,
	})
	if err != nil {
		return historyPage{}, err
	}
	out := historyPage{hasMore: page.HasMore, messages: make([]*Message, 0, len(page.Messages))}
	for _, data := range page.Messages {
		m, err := h.newMessage(name, data)
		if err != nil {
			return historyPage{}, err
		}
		out.messages = append(out.messages, m)
	}
	return out, nil
}

func (h *Hub) newMessage(room string, data []byte) (*Message, error) {
	id, err := redisscripts.IDOf(data)
	if err != nil {
		return nil, fmt.Errorf("message in room %q: %w", room, err)
	}
	m := &Message{Room: room, ID: id, Data: data}
	if h.opts.Encode != nil {
		m.Frame = h.opts.Encode(m)
	}
	return m, nil
}
