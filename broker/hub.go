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

// Options configure a Hub. Fields named after a setting take its value
// (the environment variable of the same name).
type Options struct {
	Keys    redisscripts.Keys
	History History
	// Encoder gives each message its wire bytes, once per message; nil
	// leaves Message.IDLine and Body empty.
	Encoder Encoder
	// ClientBuffer is each Subscription's queue length; a subscription
	// whose queue is full is dropped with ErrSlow.
	ClientBuffer int
	// DeliveryCheckInterval is how often the hub, when no message arrived,
	// proves its subscription still works and compares each room's
	// position with Redis.
	DeliveryCheckInterval time.Duration
	// RedisTimeout bounds each Redis operation of the hub.
	RedisTimeout time.Duration
	// Ring is how many recent messages each active room keeps to serve
	// catch-ups and repairs without Redis; 0 means DefaultRing.
	Ring int
	// MaxRepairs bounds the history reads of repairs running at once, and
	// apart from them those of catch-ups; 0 means DefaultMaxRepairs.
	MaxRepairs int
	Logger     *slog.Logger
	// Shards, set for BROKER_MODE=sharded, routes each room to its Redis
	// Cluster shard: instead of one PSUBSCRIBE, each room with local
	// listeners is SSUBSCRIBEd on its shard (one connection per shard).
	// Messages must then be published with SPUBLISH on Keys.ShardChannel
	// (redisscripts.StoreOptions.Sharded).
	Shards ShardRouter
	// Linger is how long a room stays subscribed in sharded mode after its
	// last local listener left; 0 means DefaultLinger.
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

// Hub fans out room messages from Redis Pub/Sub to local listeners. Create
// it with New, start it with Run, and Listen to rooms once it has started.
//
// No lock covers the whole hub on the delivery path: rooms are found in
// lock stripes and each room has its own lock, and the counters are atomic.
// mu guards only the hub's lifecycle and health.
type Hub struct {
	opts     Options
	sub      subscriber
	log      *slog.Logger
	reads    singleflight.Group
	repairQ  chan struct{} // one token per history read of a running repair
	readQ    chan struct{} // one token per catch-up history read (catchup.go)
	rooms    *stripes
	started  atomic.Bool   // the start gate: the first subscription was confirmed
	closed   atomic.Bool   // set before shutdown drops every listener
	startCh  chan struct{} // closed with started
	checkNow chan struct{} // asks checkPeriodically to check room positions at once

	catchUpMu sync.Mutex
	catchUps  map[string][]*catchUpRead // catch-up reads in flight, by room (catchup.go)

	mu      sync.Mutex
	running bool
	health  error // nil while the subscription receives

	repairs sync.WaitGroup
	stats   counters
}

// Sentinel errors of the hub's lifecycle.
var (
	// ErrNotReady is wrapped by Ready while the hub's subscription is not
	// known to be receiving.
	ErrNotReady = errors.New("broker subscription not receiving")
	// ErrNotStarted is returned by Listen and Subscribe until the hub's
	// first subscription is confirmed: a listener taken earlier could miss
	// messages published in between. It wraps chat.ErrUnavailable, as the
	// condition passes.
	ErrNotStarted = fmt.Errorf("%w: broker not subscribed yet", chat.ErrUnavailable)
)

// New returns a hub that subscribes through pubsub: with one PSUBSCRIBE,
// or per room on its Cluster shard when opts.Shards is set. A hub with a
// nil pubsub and no Shards has no subscription: it is started from the
// beginning and takes messages only through Receive.
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
		log:      opts.Logger,
		repairQ:  make(chan struct{}, opts.MaxRepairs),
		readQ:    make(chan struct{}, opts.MaxRepairs),
		catchUps: make(map[string][]*catchUpRead),
		rooms:    newStripes(),
		health:   ErrNotReady,
		startCh:  make(chan struct{}),
		checkNow: make(chan struct{}, 1),
	}
	switch {
	case opts.Shards != nil:
		h.sub = newShardSubscriber(h)
	case pubsub != nil:
		h.sub = newPatternSubscriber(h, pubsub)
	default:
		h.sub = noSubscriber{}
		h.reportHealth(nil)
	}
	return h
}

// Run runs the hub's subscriber and delivers messages until ctx ends. The
// subscriber reconnects whenever its connection fails and has the rooms it
// lost repaired from history, so listeners see no gap. When Run returns,
// every listener is dropped with ErrClosed and Listen fails with ErrClosed.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.running || h.closed.Load() {
		h.mu.Unlock()
		return errors.New("broker: Run called twice")
	}
	h.running = true
	h.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer h.shutdown(cancel)
	h.repairs.Add(1)
	go func() {
		defer h.repairs.Done()
		h.checkPeriodically(ctx)
	}()
	h.sub.run(ctx)
	return nil
}

func (h *Hub) shutdown(cancel context.CancelFunc) {
	cancel()
	h.repairs.Wait()
	h.mu.Lock()
	h.closed.Store(true) // before the rooms are emptied: Listen checks it under a room's lock
	h.health = fmt.Errorf("%w: %w", ErrNotReady, ErrClosed)
	h.mu.Unlock()
	for _, r := range h.rooms.all() {
		r.mu.Lock()
		for l := range r.subs {
			r.dropLocked(l, ErrClosed)
		}
		r.mu.Unlock()
	}
}

// reportHealth records whether the hub's subscription receives (err nil)
// or not. The first nil report opens the start gate.
func (h *Hub) reportHealth(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.health = err
	if err == nil && !h.started.Load() {
		h.started.Store(true)
		close(h.startCh)
	}
}

// Ready returns nil while the hub's subscription receives messages, and an
// error wrapping ErrNotReady otherwise.
func (h *Hub) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.health
}

// WaitStarted blocks until the hub's subscription is confirmed for the
// first time, so that no message published after it returns can be
// missed; it returns ctx's error if ctx ends first.
func (h *Hub) WaitStarted(ctx context.Context) error {
	select {
	case <-h.startCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the redis subscription: %w", ctx.Err())
	}
}

// Listen adds l to room's listeners and returns the room's position at that
// moment: l is then given every message after it. The first listener of a
// room in this process reads the room's position from Redis, so Listen can
// fail with chat.ErrUnavailable; it returns ErrNotStarted before the hub's
// first subscription and ErrClosed once the hub has stopped. l may be
// called before Listen returns. The caller must Unlisten when done, unless
// the hub dropped l.
func (h *Hub) Listen(ctx context.Context, name string, l Listener) (chat.ID, error) {
	if !h.started.Load() {
		return chat.ID{}, ErrNotStarted
	}
	r, first, err := h.join(name, l)
	if err != nil {
		return chat.ID{}, err
	}
	if first {
		h.sub.await(ctx, name) // subscribed before the position read
		r.readPosition(ctx)
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
		// room; readPosition corrects this for a room whose position is
		// still unknown.
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
	st := h.rooms.of(name)
	st.mu.Lock()
	defer st.mu.Unlock()
	if r := st.rooms[name]; r != nil {
		return r
	}
	r := newRoom(h, name)
	st.rooms[name] = r
	h.stats.rooms.Add(1)
	h.sub.opened(name)
	return r
}

// unregisterLocked takes r, which has no listeners left, out of the
// registry; r.mu is held.
func (h *Hub) unregisterLocked(r *room) {
	r.gone = true
	r.stopReceiptsLocked()
	st := h.rooms.of(r.name)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.rooms[r.name] == r {
		delete(st.rooms, r.name)
		h.stats.rooms.Add(-1)
		h.sub.closed(r.name)
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
	return r.removeLocked(l)
}
