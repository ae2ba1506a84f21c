package broker

import "sync/atomic"

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
