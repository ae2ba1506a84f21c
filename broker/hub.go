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
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"roomcast/broker/chat"
	"roomcast/redisscripts"
)

// History is the read access to rooms that the hub needs to give every
// listener a gap-free sequence.
type History interface {
	Positions(ctx context.Context, rooms []string) ([]chat.ID, error)
	History(ctx context.Context, room string, q chat.Query) (chat.Page, error)
}

// RoomWatcher is told when a room gets its first local listener and when it
// loses its last: the seam for a subscription per room (sharded Pub/Sub).
// Its methods run with a lock of the hub held (the registry shard of the
// room), so calls for one room come in order: they must not block and must
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
	// MaxRepairs bounds the history reads of repairs running at once, and
	// apart from them those of catch-ups; 0 means DefaultMaxRepairs.
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
// ephemeral events as they come. Its methods run with the room's lock held,
// so calls for one room never overlap (calls for different rooms may): they
// must not block and must not call the hub.
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
//
// No lock covers the whole hub on the delivery path: rooms are found in a
// sharded registry and each room has its own lock (rooms.go), and the
// counters are atomic. mu guards only the hub's lifecycle and health.
type Hub struct {
	opts    Options
	pubsub  PubSubber
	log     *slog.Logger
	probe   string // this hub's probe channel
	reads   singleflight.Group
	repairQ chan struct{} // one token per history read of a running repair
	readQ   chan struct{} // one token per catch-up history read (catchup.go)
	rooms   *registry
	closed  atomic.Bool // set before shutdown drops every listener

	mu           sync.Mutex
	running      bool
	health       map[string]error // per subscription; nil while it receives
	started      chan struct{}    // closed when the first subscription is confirmed
	checkNow     chan struct{}    // asks Run to check room positions at once
	everReceived bool

	repairs sync.WaitGroup
	stats   counters

	shards *shardSubscriber // sharded mode only (BROKER_MODE=sharded)
}

// counters are the hub's Stats, updated without a lock.
type counters struct {
	rooms, subscribers                                            atomic.Int64
	received, delivered, slowDrops, repairs, reconnects, ringHits atomic.Uint64
	historyHits                                                   atomic.Uint64
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

// Stats returns the hub's current counts; each is read atomically, not all
// at one instant.
func (h *Hub) Stats() Stats {
	c := &h.stats
	return Stats{
		Rooms: int(c.rooms.Load()), Subscribers: int(c.subscribers.Load()),
		Received: c.received.Load(), Delivered: c.delivered.Load(), SlowDrops: c.slowDrops.Load(),
		Repairs: c.repairs.Load(), Reconnects: c.reconnects.Load(), RingHits: c.ringHits.Load(),
		HistoryHits: c.historyHits.Load(),
	}
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
		readQ:    make(chan struct{}, opts.MaxRepairs),
		rooms:    newRegistry(),
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
// fail with chat.ErrUnavailable; it returns ErrClosed once the hub
// has stopped. l may be called before Listen returns. The caller must
// Unlisten when done, unless the hub dropped l.
func (h *Hub) Listen(ctx context.Context, name string, l Listener) (chat.ID, error) {
	r, first, err := h.join(name, l)
	if err != nil {
		return chat.ID{}, err
	}
	if first {
		if a, ok := h.opts.Watcher.(RoomAwaiter); ok {
			a.AwaitRoom(ctx, name) // subscribed before the position read
		}
		h.initRoom(ctx, r)
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		h.Unlisten(name, l)
		return chat.ID{}, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.initErr != nil {
		return chat.ID{}, r.initErr
	}
	start, ok := r.subs[l]
	if !ok && h.closed.Load() {
		return chat.ID{}, ErrClosed
	}
	return start, nil // if dropped meanwhile, Dropped has told l
}

// join adds l to room name, registering the room if it has no listeners;
// first reports that l is the room's first listener, which must read its
// position.
func (h *Hub) join(name string, l Listener) (r *room, first bool, err error) {
	for {
		if h.closed.Load() {
			return nil, false, ErrClosed
		}
		r = h.register(name)
		r.mu.Lock()
		if r.gone { // emptied before l got in: register anew
			r.mu.Unlock()
			continue
		}
		if h.closed.Load() { // shutdown may have passed this room already
			if len(r.subs) == 0 {
				h.unregisterLocked(r)
			}
			r.mu.Unlock()
			return nil, false, ErrClosed
		}
		// The listener starts after the last message delivered to the
		// room; initRoom corrects this for a room whose position is still
		// unknown.
		r.subs[l] = r.last
		r.list = nil
		h.stats.subscribers.Add(1)
		first = !r.inited
		r.inited = true
		r.mu.Unlock()
		return r, first, nil
	}
}

// register returns the room called name, adding it to the registry if it
// is not there.
func (h *Hub) register(name string) *room {
	if r := h.rooms.get(name); r != nil {
		return r
	}
	s := h.rooms.shardOf(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[name]; r != nil {
		return r
	}
	r := &room{name: name, subs: make(map[Listener]chat.ID), ready: make(chan struct{}), repairing: true,
		ring: newRing(h.opts.Ring)}
	s.rooms[name] = r
	h.stats.rooms.Add(1)
	if h.opts.Watcher != nil {
		h.opts.Watcher.RoomOpened(name)
	}
	return r
}

// unregisterLocked takes r, which has no listeners left, out of the
// registry; r.mu is held.
func (h *Hub) unregisterLocked(r *room) {
	r.gone = true
	s := h.rooms.shardOf(r.name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.name] == r {
		delete(s.rooms, r.name)
		h.stats.rooms.Add(-1)
		if h.opts.Watcher != nil {
			h.opts.Watcher.RoomClosed(r.name)
		}
	}
}

// lockRoom returns the room called name with its lock held, or nil if the
// room has no local listeners.
func (h *Hub) lockRoom(name string) *room {
	for {
		r := h.rooms.get(name)
		if r == nil {
			return nil
		}
		r.mu.Lock()
		if !r.gone {
			return r
		}
		// Emptied since it was found; it is out of the registry already.
		r.mu.Unlock()
	}
}

// Unlisten removes l from room; it reports false if l was not listening
// (never was, or the hub dropped it). Dropped is not called.
func (h *Hub) Unlisten(name string, l Listener) bool {
	r := h.lockRoom(name)
	if r == nil {
		return false
	}
	defer r.mu.Unlock()
	return h.removeLocked(r, l)
}

// initRoom reads the position of a room that just got its first local
// listener; messages arriving meanwhile wait in r.pending.
func (h *Hub) initRoom(ctx context.Context, r *room) {
	// Others may be waiting for this read: the first listener leaving
	// must not fail it for them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.Timeout)
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
			h.removeLocked(r, l)
		}
		return
	}
	r.last = ids[0]
	for l := range r.subs {
		r.subs[l] = r.last // all joined while the position was unknown
	}
	var done bool
	if slow, done = h.flushPendingLocked(r); !done {
		// A message went missing right behind the position just read: have
		// Run compare the room with Redis, which repairs it from history.
		r.pending, r.repairing = nil, false
		select {
		case h.checkNow <- struct{}{}:
		default: // a check is already asked for
		}
	}
}

// removeLocked takes l out of r, unregistering r if left empty.
func (h *Hub) removeLocked(r *room, l Listener) bool {
	if _, ok := r.subs[l]; !ok {
		return false
	}
	delete(r.subs, l)
	r.list = nil
	h.stats.subscribers.Add(-1)
	if len(r.subs) == 0 {
		h.unregisterLocked(r)
	}
	return true
}

// dropLocked removes l from r and tells it why.
func (h *Hub) dropLocked(r *room, l Listener, err error) {
	if !h.removeLocked(r, l) {
		return
	}
	if err == ErrSlow {
		h.stats.slowDrops.Add(1)
	}
	l.Dropped(err)
}

// deliverLocked gives m to every listener of r without ever blocking and
// returns how many it dropped for being slow, for the caller to log once
// the lock is released.
func (h *Hub) deliverLocked(r *room, m *Message) (slow int) {
	r.last = m.ID
	r.ring.add(m)
	taken := 0
	for _, l := range r.listenersLocked() {
		if l.Deliver(m) {
			taken++
			continue
		}
		slow++
		h.dropLocked(r, l, ErrSlow)
	}
	h.stats.delivered.Add(uint64(taken)) // once per message: the counter is shared by every room
	return slow
}

// dispatch routes one live message to its room.
func (h *Hub) dispatch(ctx context.Context, m *Message) {
	h.stats.received.Add(1)
	r := h.lockRoom(m.Room)
	if r == nil {
		return
	}
	slow := 0
	switch {
	case m.Ephemeral():
		taken := 0
		for _, l := range r.listenersLocked() {
			if l.Deliver(m) {
				taken++
			}
		}
		h.stats.delivered.Add(uint64(taken))
	case r.repairing:
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, m)
		}
	case m.ID.Covered(r.last):
	case m.ID.Follows(r.last):
		slow = h.deliverLocked(r, m)
	default:
		r.pending = append(r.pending, m)
		h.startRepairLocked(ctx, r)
	}
	r.mu.Unlock()
	h.logSlow(m.Room, slow)
}

func (h *Hub) logSlow(room string, n int) {
	if n > 0 {
		h.log.Warn("dropping slow listeners", "room", room, "count", n)
	}
}

// flushPendingLocked delivers the pending messages that continue r's
// sequence and reports whether all of them did; if not, r stays repairing and
// the rest stays pending.
func (h *Hub) flushPendingLocked(r *room) (slow int, done bool) {
	for i, m := range r.pending {
		switch {
		case m.ID.Covered(r.last):
		case m.ID.Follows(r.last):
			slow += h.deliverLocked(r, m)
		default:
			r.pending = r.pending[i:]
			return slow, false
		}
	}
	r.pending = nil
	r.repairing = false
	return slow, true
}
