package broker

import (
	"sync"

	"roomcast/broker/chat"
)

// The hub's rooms live in a registry of shards, each a map under its own
// lock, so that finding a room never waits for another room's fan-out;
// each room then has its own lock for its sequence and listeners. Lock
// order: a room's lock, then its shard's; nothing takes a room's lock while
// holding a shard's.

// shardCount is a power of two well above the cores that deliver at once.
const shardCount = 64

type roomShard struct {
	mu    sync.RWMutex
	rooms map[string]*room
}

type registry struct {
	shards [shardCount]roomShard
}

func newRegistry() *registry {
	g := &registry{}
	for i := range g.shards {
		g.shards[i].rooms = make(map[string]*room)
	}
	return g
}

// shardOf hashes name with FNV-1a, without allocating.
func (g *registry) shardOf(name string) *roomShard {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return &g.shards[h%shardCount]
}

func (g *registry) get(name string) *room {
	s := g.shardOf(name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[name]
}

// all returns every room registered now.
func (g *registry) all() []*room {
	var out []*room
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.RLock()
		for _, r := range s.rooms {
			out = append(out, r)
		}
		s.mu.RUnlock()
	}
	return out
}

// room is the hub's state for a room with local listeners. Everything but
// name is guarded by mu.
type room struct {
	name string

	mu        sync.Mutex
	gone      bool                 // taken out of the registry; a new room of this name may exist
	subs      map[Listener]chat.ID // each listener's start
	list      []Listener           // subs' listeners for fan-out; nil when stale
	inited    bool                 // a listener has started reading the room's position
	last      chat.ID              // last message delivered to subs
	ready     chan struct{}        // closed once last is known
	initErr   error                // why last could not be read
	repairing bool                 // last is being found or a gap repaired; pending collects live messages
	pending   []*Message
	ring      ring
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
