// Package broker delivers room messages published on Redis to the local
// listeners of each room, each in an unbroken sequence, without ever
// letting a slow listener hold up a room or a room hold up another.
//
// Inside, one word means one thing:
//
//   - Hub (hub.go) is the process's broker: the rooms with local listeners,
//     Listen and Unlisten, its lifecycle (Run), health (Ready) and start
//     gate (ErrNotStarted), and its counters (Stats).
//   - A subscriber (subscriber.go) is how the hub hears Redis, chosen once
//     by New: the patternSubscriber (pattern.go) holds one PSUBSCRIBE for
//     every room; the shardSubscriber (sharded.go, shard.go, router.go)
//     SSUBSCRIBEs each room with local listeners on its Redis Cluster shard.
//     "Shard" always means a Cluster shard: the node that masters a slot.
//   - A room (room.go) owns its sequence: it delivers a message that follows
//     the last one, holds messages while its position is read or a gap is
//     repaired, and repairs gaps from history (repair.go). Its ring
//     (ring.go) keeps recent messages for catch-ups (catchup.go).
//   - Rooms are found in stripes (stripes.go): 64 maps, each under its own
//     lock, so that finding a room never waits for another's fan-out.
//   - Receive (receive.go) turns one Pub/Sub payload into a Message, encoded
//     once by the Encoder, and hands it to its room; check.go compares every
//     room's position with Redis now and then, the only way to notice a
//     message lost in a room that stays quiet.
//
// Lock order: a room's lock, then its stripe's; the shardSubscriber's own
// lock after both. Nothing is logged while a lock is held.
package broker
