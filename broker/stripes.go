package broker

import "sync"

// stripeCount is the number of lock stripes of the room registry: a power
// of two well above the cores that deliver at once.
const stripeCount = 64

// stripe is one lock stripe of the registry: the rooms whose names hash to
// it, under one lock.
type stripe struct {
	mu    sync.RWMutex
	rooms map[string]*room
}

// stripes is the hub's registry of rooms with local listeners, split into
// lock stripes so that finding a room never waits for another room's
// fan-out. Lock order: a room's lock, then its stripe's; nothing takes a
// room's lock while holding a stripe's.
type stripes [stripeCount]stripe

func newStripes() *stripes {
	s := &stripes{}
	for i := range s {
		s[i].rooms = make(map[string]*room)
	}
	return s
}

// of returns the stripe of name, hashed with FNV-1a without allocating.
func (s *stripes) of(name string) *stripe {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return &s[h%stripeCount]
}

func (s *stripes) get(name string) *room {
	st := s.of(name)
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.rooms[name]
}

// all returns every room registered now.
func (s *stripes) all() []*room {
	var out []*room
	for i := range s {
		st := &s[i]
		st.mu.RLock()
		for _, r := range st.rooms {
			out = append(out, r)
		}
		st.mu.RUnlock()
	}
	return out
}
