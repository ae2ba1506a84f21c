// Package broker delivers room messages published on Redis to the local
// listeners of each room. One Hub per process holds ONE Redis connection
// subscribed to every room with PSUBSCRIBE and fans each message out to
// listeners that never block it, repairing gaps from the room's history and
// keeping a ring of recent messages per room that serves catch-ups without
// Redis.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"roomcast/redisscripts"
)

// History is the read access to rooms that the hub needs to give every
// listener a gap-free sequence.
type History interface {
	Positions(ctx context.Context, rooms []string) ([]redisscripts.ID, error)
	History(ctx context.Context, room string, q redisscripts.Query) (redisscripts.Page, error)
}

// RoomWatcher is told when a room gets its first local listener and when it
// loses its last: the seam for a subscription per room (sharded Pub/Sub).
// Its methods run with the hub's lock held: they must not block and must
// not call the hub.
type RoomWatcher interface {
	RoomOpened(room string)
	RoomClosed(room string)
}

// RoomAwaiter is a RoomWatcher whose subscription of a room takes effect
// only once Redis confirms it (SSUBSCRIBE). For a room's first listener,
// Listen calls AwaitRoom after RoomOpened, without the hub's lock, and
// reads the room's position only when it returns: so no message published
// after that read can be missed. If AwaitRoom gives up first (ctx ended, or
// its own deadline), it must Recheck the room once it is subscribed.
type RoomAwaiter interface {
	AwaitRoom(ctx context.Context, room string)
}

// Options configure a Hub.
type Options struct {
	Keys    redisscripts.Keys
	History History
	// Encode turns a message (or ephemeral event) into the bytes every
	// listener writes; it runs once per message.
	Encode func(*Message) []byte
	// Buffer is each Subscription's queue length; a subscription whose
	// queue is full is dropped with ErrSlow.
	Buffer int
	// CheckInterval is how often the hub, when no message arrived, proves
	// its subscription still works and compares each room's position with
	// Redis.
	CheckInterval time.Duration
	// Timeout bounds each Redis operation of the hub.
	Timeout time.Duration
	// Ring is how many recent messages each active room keeps to serve
	// catch-ups and repairs without Redis; 0 means DefaultRing.
	Ring int
	// MaxRepairs bounds the history reads of repairs running at once;
	// 0 means DefaultMaxRepairs.
	MaxRepairs int
	// Watcher, if set, is told about rooms opening and closing; if it is a
	// RoomAwaiter too, a room's first Listen waits for it.
	Watcher RoomWatcher
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

// Defaults of Options.
const (
	DefaultRing       = 256
	DefaultMaxRepairs = 8
)

// Listener receives a room's messages from the hub: stored messages in
// order, each following the one before (or the start Listen returned), and
// ephemeral events as they come. Its methods run with the hub's lock held:
// they must not block and must not call the hub.
type Listener interface {
	// Deliver takes m without blocking. false means the listener cannot
	// keep up: for a stored message the hub then drops it with ErrSlow;
	// an ephemeral event is simply not delivered.
	Deliver(m *Message) bool
	// Dropped tells the listener that the hub removed it, and why
	// (ErrSlow, ErrReset, ErrClosed). It is not called after Unlisten
	// nor for a Listen that returned an error.
	Dropped(err error)
}

// Hub fans out room messages from one shared Redis subscription. Create it
// with New, start it with Run, and Listen to rooms while it runs.
type Hub struct {
	opts    Options
	pubsub  PubSubber
	log     *slog.Logger
	probe   string // this hub's probe channel
	reads   singleflight.Group
	repairQ chan struct{} // one token per history read of a running repair

	mu          sync.Mutex
	rooms       map[string]*room
	running     bool
	closed      bool
	health      map[string]error // per subscription; nil while it receives
	started     chan struct{}    // closed when the first subscription is confirmed
	checkNow    chan struct{}    // asks Run to check room positions at once
	everHealthy bool

	repairs sync.WaitGroup
	stats   Stats // counters, under mu

	shards *shardSubscriber // sharded mode only (BROKER_MODE=sharded)
}

// Stats counts what a hub has done since it was created.
type Stats struct {
	Rooms       int    // rooms with local listeners now
	Subscribers int    // listeners now
	Received    uint64 // messages received from Redis Pub/Sub
	Delivered   uint64 // messages taken by listeners, one per listener
	SlowDrops   uint64 // listeners dropped because they could not keep up
	Repairs     uint64 // gaps repaired from history
	Reconnects  uint64 // times the Redis subscription was re-established
	RingHits    uint64 // catch-ups served from a room's ring
	HistoryHits uint64 // catch-up pages read from Redis (coalesced reads count once)
}

// Stats returns the hub's current counts.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Rooms = len(h.rooms)
	return s
}

// room is the hub's state for a room with local listeners.
type room struct {
	subs    map[Listener]redisscripts.ID // each listener's start
	last    redisscripts.ID              // last message delivered to subs
	ready   chan struct{}                // closed once last is known
	initErr error                        // why last could not be read
	busy    bool                         // last is being found or a gap repaired; pending collects live messages
	pending []*Message
	ring    ring
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
	if opts.Ring <= 0 {
		opts.Ring = DefaultRing
	}
	if opts.MaxRepairs <= 0 {
		opts.MaxRepairs = DefaultMaxRepairs
	}
	h := &Hub{
		opts:     opts,
		pubsub:   pubsub,
		log:      opts.Logger,
		probe:    opts.Keys.ProbeChannel(randomName()),
		repairQ:  make(chan struct{}, opts.MaxRepairs),
		rooms:    make(map[string]*room),
		health:   map[string]error{"": ErrNotReady},
		started:  make(chan struct{}),
		checkNow: make(chan struct{}, 1),
	}
	if opts.Shards != nil {
		// Sharded mode: the shard subscriber watches rooms open and close
		// (RoomWatcher, RoomAwaiter) and feeds the hub through its seams
		// (Receive, Recheck, ReportHealth); Run runs it instead of PSUBSCRIBE.
		h.shards = newShardSubscriber(h, opts)
		h.opts.Watcher = joinWatchers(h.shards, opts.Watcher)
	}
	return h
}

// Ready returns nil while every subscription of the hub receives messages,
// and an error wrapping ErrNotReady otherwise.
func (h *Hub) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.health {
		if err != nil {
			return err
		}
	}
	return nil
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

// Listen adds l to room's listeners and returns the room's position at that
// moment: l is then given every message after it. The first listener of a
// room in this process reads the room's position from Redis, so Listen can
// fail with redisscripts.ErrUnavailable; it returns ErrClosed once the hub
// has stopped. l may be called before Listen returns. The caller must
// Unlisten when done, unless the hub dropped l.
func (h *Hub) Listen(ctx context.Context, name string, l Listener) (redisscripts.ID, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return redisscripts.ID{}, ErrClosed
	}
	r, found := h.rooms[name]
	if !found {
		r = &room{subs: make(map[Listener]redisscripts.ID), ready: make(chan struct{}), busy: true,
			ring: newRing(h.opts.Ring)}
		h.rooms[name] = r
		if h.opts.Watcher != nil {
			h.opts.Watcher.RoomOpened(name)
		}
	}
	// The listener starts after the last message delivered to the room;
	// initRoom corrects this for a room whose position is still unknown.
	r.subs[l] = r.last
	h.stats.Subscribers++
	h.mu.Unlock()

	if !found {
		if a, ok := h.opts.Watcher.(RoomAwaiter); ok {
			a.AwaitRoom(ctx, name) // subscribed before the position read
		}
		h.initRoom(ctx, name, r)
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		h.Unlisten(name, l)
		return redisscripts.ID{}, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.initErr != nil {
		return redisscripts.ID{}, r.initErr
	}
	start, ok := r.subs[l]
	if !ok && h.closed {
		return redisscripts.ID{}, ErrClosed
	}
	return start, nil // if dropped meanwhile, Dropped has told l
}

// Unlisten removes l from room; it reports false if l was not listening
// (never was, or the hub dropped it). Dropped is not called.
func (h *Hub) Unlisten(name string, l Listener) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.removeLocked(name, l)
}

// initRoom reads the position of a room that just got its first local
// listener; messages arriving meanwhile wait in r.pending.
func (h *Hub) initRoom(ctx context.Context, name string, r *room) {
	// Others may be waiting for this read: the first listener leaving
	// must not fail it for them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.Timeout)
	defer cancel()
	ids, err := h.opts.History.Positions(ctx, []string{name})
	h.mu.Lock()
	defer h.mu.Unlock()
	defer close(r.ready)
	if err != nil {
		r.initErr = fmt.Errorf("read room position: %w", err)
		for l := range r.subs {
			h.removeLocked(name, l)
		}
		return
	}
	r.last = ids[0]
	for l := range r.subs {
		r.subs[l] = r.last // all joined while the position was unknown
	}
	if _, done := h.flushPendingLocked(name, r); !done {
		// A message went missing right behind the position just read: have
		// Run compare the room with Redis, which repairs it from history.
		r.pending, r.busy = nil, false
		select {
		case h.checkNow <- struct{}{}:
		default: // a check is already asked for
		}
	}
}

// removeLocked takes l out of room, deleting a room left empty.
func (h *Hub) removeLocked(name string, l Listener) bool {
	r := h.rooms[name]
	if r == nil {
		return false
	}
	if _, ok := r.subs[l]; !ok {
		return false
	}
	delete(r.subs, l)
	h.stats.Subscribers--
	if len(r.subs) == 0 {
		delete(h.rooms, name)
		if h.opts.Watcher != nil {
			h.opts.Watcher.RoomClosed(name)
		}
	}
	return true
}

// dropLocked removes l from its room and tells it why.
func (h *Hub) dropLocked(name string, l Listener, err error) {
	if !h.removeLocked(name, l) {
		return
	}
	if err == ErrSlow {
		h.stats.SlowDrops++
	}
	l.Dropped(err)
}

// deliverLocked gives m to every listener of r without ever blocking and
// returns how many it dropped for being slow, for the caller to log once
// the lock is released.
func (h *Hub) deliverLocked(name string, r *room, m *Message) (slow int) {
	r.last = m.ID
	r.ring.add(m)
	for l := range r.subs {
		if l.Deliver(m) {
			h.stats.Delivered++
			continue
		}
		slow++
		h.dropLocked(name, l, ErrSlow)
	}
	return slow
}

// dispatch routes one live message to its room.
func (h *Hub) dispatch(ctx context.Context, m *Message) {
	slow := 0
	defer func() { h.logSlow(m.Room, slow) }()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats.Received++
	r := h.rooms[m.Room]
	switch {
	case r == nil:
	case m.Ephemeral():
		for l := range r.subs {
			if l.Deliver(m) {
				h.stats.Delivered++
			}
		}
	case r.busy:
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, m)
		}
	case m.ID.Covered(r.last):
	case m.ID.Follows(r.last):
		slow = h.deliverLocked(m.Room, r, m)
	default:
		r.pending = append(r.pending, m)
		h.startRepairLocked(ctx, m.Room, r)
	}
}

func (h *Hub) logSlow(room string, n int) {
	if n > 0 {
		h.log.Warn("dropping slow listeners", "room", room, "count", n)
	}
}

// flushPendingLocked delivers the pending messages that continue r's
// sequence and reports whether all of them did; if not, r stays busy and
// the rest stays pending.
func (h *Hub) flushPendingLocked(name string, r *room) (slow int, done bool) {
	for i, m := range r.pending {
		switch {
		case m.ID.Covered(r.last):
		case m.ID.Follows(r.last):
			slow += h.deliverLocked(name, r, m)
		default:
			r.pending = r.pending[i:]
			return slow, false
		}
	}
	r.pending = nil
	r.busy = false
	return slow, true
}
