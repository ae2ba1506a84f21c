package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/redisscripts"
)

// shardSubscriber is the hub's subscriber in sharded mode: it subscribes,
// with SSUBSCRIBE, to the rooms that have local listeners, over one
// connection per Redis Cluster shard (the master owning the slots). The
// hub tells it when a room gets its first local listener (opened, then
// await) and loses its last (closed); unsubscribing waits linger, so a
// reconnecting client does not churn. One manager goroutine routes and
// batches the changes; one goroutine per shard reads its connection.
type shardSubscriber struct {
	hub     *Hub
	router  ShardRouter
	keys    redisscripts.Keys
	log     *slog.Logger
	id      string // names this process's probe channels
	linger  time.Duration
	timeout time.Duration
	check   time.Duration

	wake     chan struct{} // asks the manager to sync
	healthMu sync.Mutex    // orders health reports

	mu      sync.Mutex
	rooms   map[string]*shardRoom
	dirty   map[string]struct{} // rooms to subscribe or unsubscribe at the next sync
	shards  map[string]*shard   // by node address
	recheck []string            // rooms (re)subscribed whose gap must be repaired
	lost    int                 // wanted rooms that were subscribed and are not now
	lastErr error               // why they are not
	backoff *backoff
	workers sync.WaitGroup
}

// shardRoom is the subscription state of one room.
type shardRoom struct {
	name      string
	wanted    bool          // it has local subscribers (or an opener waits)
	expired   bool          // unwanted for linger: unsubscribe it
	timer     *time.Timer   // the linger
	shard     *shard        // the connection it is subscribed on, or being subscribed on
	confirmed chan struct{} // closed once the subscription is confirmed
	isOn      bool          // confirmed is closed
	lost      bool          // was subscribed, is not now: counted in lost
	recheck   bool          // repair it from history when confirmed
}

func newShardSubscriber(h *Hub) *shardSubscriber {
	opts := h.opts
	linger := opts.Linger
	if linger <= 0 {
		linger = DefaultLinger
	}
	return &shardSubscriber{
		hub: h, router: opts.Shards, keys: opts.Keys, log: opts.Logger, id: randomName(),
		linger: linger, timeout: opts.RedisTimeout, check: opts.DeliveryCheckInterval,
		wake:  make(chan struct{}, 1),
		rooms: make(map[string]*shardRoom), dirty: make(map[string]struct{}),
		shards:  make(map[string]*shard),
		backoff: newBackoff(),
	}
}

// DefaultLinger is how long a room stays subscribed after its last local
// listener left, in sharded mode, when Options.Linger is zero.
const DefaultLinger = 2 * time.Second

// opened marks room wanted and has the manager subscribe it. It never
// blocks: the hub calls it with the room's stripe locked (lock order: the
// hub's locks, then s.mu).
func (s *shardSubscriber) opened(name string) {
	s.mu.Lock()
	r := s.rooms[name]
	if r == nil {
		r = &shardRoom{name: name, confirmed: make(chan struct{})}
		s.rooms[name] = r
	}
	r.wanted, r.expired = true, false
	s.dirty[name] = struct{}{}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	s.mu.Unlock()
	s.poke()
}

// await waits (at most the Redis timeout) until the subscription of a
// room that opened is confirmed, so that a position read afterwards
// misses nothing. If the wait ends first, the room is rechecked once
// subscribed, and the hub is not ready meanwhile if the timeout ran out.
func (s *shardSubscriber) await(ctx context.Context, name string) {
	s.mu.Lock()
	r := s.rooms[name]
	if r == nil || r.isOn {
		s.mu.Unlock()
		return
	}
	confirmed := r.confirmed
	s.mu.Unlock()

	t := time.NewTimer(s.timeout)
	defer t.Stop()
	timedOut := false
	select {
	case <-confirmed:
		return
	case <-t.C:
		timedOut = true
	case <-ctx.Done():
	}
	s.mu.Lock()
	if s.rooms[name] == r && !r.isOn {
		r.recheck = true
	}
	late := timedOut && s.rooms[name] == r && !r.isOn && r.wanted && !r.lost
	if late {
		// Delivery to this room is not working yet: not ready until it is.
		r.lost = true
		s.lost++
		s.lastErr = fmt.Errorf("room %q: subscription not confirmed within %v", name, s.timeout)
	}
	s.mu.Unlock()
	if late {
		s.reportHealth()
	}
}

// closed marks room unwanted; it is unsubscribed after linger unless
// opened again. It never blocks: the hub calls it with the room's stripe
// locked.
func (s *shardSubscriber) closed(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[name]
	if r == nil || !r.wanted {
		return
	}
	r.wanted = false
	if r.lost {
		r.lost = false
		s.lost--
	}
	r.timer = time.AfterFunc(s.linger, func() {
		s.mu.Lock()
		if s.rooms[name] == r && !r.wanted {
			r.expired = true
			s.dirty[name] = struct{}{}
		}
		s.mu.Unlock()
		s.poke()
	})
}

func (s *shardSubscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run manages the subscriptions until ctx ends, then closes them all.
func (s *shardSubscriber) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		shards := make([]*shard, 0, len(s.shards))
		for _, sh := range s.shards {
			sh.gone = true
			shards = append(shards, sh)
		}
		s.mu.Unlock()
		for _, sh := range shards {
			sh.close()
		}
		s.workers.Wait()
	}()
	s.reportHealth()
	verify := time.NewTicker(s.check)
	defer verify.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-s.wake:
		case <-retry:
		case <-verify.C:
			s.verifyShards(ctx)
		case <-ctx.Done():
			return
		}
		retry = nil
		if !s.sync(ctx) {
			s.mu.Lock() // confirmations reset the backoff
			d := s.backoff.next
			s.backoff.next = min(2*s.backoff.next, maxBackoff)
			s.mu.Unlock()
			retry = time.After(d)
		}
		s.reportHealth()
		if names := s.takeRechecks(); len(names) > 0 {
			s.hub.checkRooms(ctx, names)
		}
	}
}

// sync subscribes the wanted rooms that are not, and unsubscribes the
// expired ones, batched by shard and slot. It reports false if some room
// could not be routed or subscribed, so that the manager retries.
func (s *shardSubscriber) sync(ctx context.Context) bool {
	s.mu.Lock()
	var toRoute []string
	unsub := make(map[*shard]map[uint16][]string)
	for name := range s.dirty {
		delete(s.dirty, name)
		r := s.rooms[name]
		switch {
		case r == nil:
		case r.wanted && r.shard == nil:
			toRoute = append(toRoute, name)
		case r.expired && r.shard == nil:
			delete(s.rooms, name)
		case r.expired:
			sh := r.shard
			ch := s.keys.ShardChannel(name)
			if unsub[sh] == nil {
				unsub[sh] = make(map[uint16][]string)
			}
			unsub[sh][slotOf(ch)] = append(unsub[sh][slotOf(ch)], ch)
			sh.unsubs[ch]++
			delete(sh.rooms, name)
			delete(s.rooms, name)
		}
	}
	s.mu.Unlock()

	ok := true
	for sh, bySlot := range unsub {
		for _, chans := range bySlot {
			if err := sh.ps.SUnsubscribe(ctx, chans...); err != nil {
				s.shardFailed(sh, fmt.Errorf("sunsubscribe: %w", err))
				break
			}
		}
	}

	nodes := make(map[string]*redis.Client)
	route := make(map[string]string, len(toRoute)) // room → node address
	var unrouted []string
	var routeErr error
	for _, name := range toRoute {
		node, err := s.nodeFor(ctx, s.keys.ShardChannel(name))
		if err != nil {
			unrouted, routeErr = append(unrouted, name), err
			continue
		}
		addr := node.Options().Addr
		nodes[addr], route[name] = node, addr
	}
	if len(unrouted) > 0 {
		s.log.Warn("routing rooms to their shards", "rooms", len(unrouted), "err", routeErr)
		ok = false
	}
	var fresh []*shard
	batches := make(map[*shard]map[uint16][]string)
	s.mu.Lock()
	for _, name := range unrouted {
		s.dirty[name] = struct{}{}
	}
	for name, addr := range route {
		r := s.rooms[name]
		if r == nil || !r.wanted || r.shard != nil {
			continue
		}
		sh := s.shards[addr]
		if sh == nil {
			sh = s.newShardLocked(ctx, addr, nodes[addr])
			fresh = append(fresh, sh)
		}
		r.shard = sh
		sh.rooms[name] = struct{}{}
		ch := s.keys.ShardChannel(name)
		if batches[sh] == nil {
			batches[sh] = make(map[uint16][]string)
		}
		batches[sh][slotOf(ch)] = append(batches[sh][slotOf(ch)], ch)
	}
	s.mu.Unlock()

	for _, sh := range fresh {
		if err := s.startShard(ctx, sh); err != nil {
			s.shardFailed(sh, err)
			ok = false
		}
	}
	for sh, bySlot := range batches {
		for _, chans := range bySlot {
			if err := sh.ps.SSubscribe(ctx, chans...); err != nil {
				s.shardFailed(sh, fmt.Errorf("ssubscribe: %w", err))
				ok = false
				break
			}
		}
	}
	for sh := range unsub {
		s.closeIfEmpty(sh)
	}
	return ok
}

func (s *shardSubscriber) nodeFor(ctx context.Context, channel string) (*redis.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.router.NodeFor(ctx, channel)
}

func (s *shardSubscriber) newShardLocked(ctx context.Context, addr string, node *redis.Client) *shard {
	sh := &shard{
		addr: addr, node: node, ps: node.SSubscribe(ctx),
		rooms: make(map[string]struct{}), unsubs: make(map[string]int),
	}
	s.shards[addr] = sh
	return sh
}

// errNotMaster is a shard whose node no longer masters its slots.
var errNotMaster = errors.New("node no longer serves the shard's slots (failover)")

// verifyShards drops the connections to nodes that no longer master their
// slots. After a failover the old master, now a replica, keeps passing on
// the shard's messages without a word, so only the slot map tells; the
// rooms are then subscribed on the new master and repaired.
func (s *shardSubscriber) verifyShards(ctx context.Context) {
	s.router.Refresh(ctx)
	s.mu.Lock()
	shards := make([]*shard, 0, len(s.shards))
	for _, sh := range s.shards {
		if sh.probe != "" {
			shards = append(shards, sh)
		}
	}
	s.mu.Unlock()
	for _, sh := range shards {
		node, err := s.nodeFor(ctx, sh.probe)
		if err == nil && node.Options().Addr != sh.addr {
			s.shardFailed(sh, errNotMaster)
		}
	}
}

// closeIfEmpty closes a shard that has no rooms left.
func (s *shardSubscriber) closeIfEmpty(sh *shard) {
	s.mu.Lock()
	empty := !sh.gone && len(sh.rooms) == 0
	if empty {
		sh.gone = true
		delete(s.shards, sh.addr)
	}
	s.mu.Unlock()
	if empty {
		sh.close()
	}
}

func (s *shardSubscriber) takeRechecks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.recheck
	s.recheck = nil
	return names
}

// reportHealth tells the hub whether every room that was subscribed still
// is. It must not be called with s.mu held.
func (s *shardSubscriber) reportHealth() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.mu.Lock()
	var err error
	if s.lost > 0 {
		err = fmt.Errorf("%w: %d rooms not subscribed: %w", ErrNotReady, s.lost, s.lastErr)
	}
	s.mu.Unlock()
	// The hub's subscription is, in sharded mode, all the shards'
	// connections together.
	s.hub.reportHealth(err)
}
