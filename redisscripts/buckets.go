package redisscripts

import (
	"strconv"
	"sync"
)

// A bucket holds what instances must find without knowing the room: the
// rooms with webhook events pending, the dead letters, the rooms whose
// presence expires. A script may touch only keys of its room's hash slot,
// so on a Redis Cluster there is one bucket per slot, named by a hash tag
// chosen to land on that slot; a standalone Redis has one bucket. Every
// instance of a deployment must agree (they do: REDIS_CLUSTER decides).

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// slotTags()[s] is a short string whose hash slot is s; made on first use.
var slotTags = sync.OnceValue(func() *[clusterSlots]string {
	tags := new([clusterSlots]string)
	found := 0
	for n := 0; found < clusterSlots; n++ {
		tag := strconv.FormatInt(int64(n), 36)
		if s := slotOf(tag); tags[s] == "" {
			tags[s] = tag
			found++
		}
	}
	return tags
})

// slotOf is the Redis Cluster hash slot of a hash tag: CRC16 (XMODEM) of
// it, modulo 16384.
func slotOf(tag string) int {
	var crc uint16
	for i := 0; i < len(tag); i++ {
		crc ^= uint16(tag[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// PerSlotBuckets returns k with one bucket per Redis Cluster hash slot, for
// a deployment on a Cluster.
func (k Keys) PerSlotBuckets() Keys {
	k.perSlot = true
	return k
}

// bucketTag is the hash tag of room's bucket.
func (k Keys) bucketTag(room string) string {
	if !k.perSlot {
		return "all"
	}
	return slotTags()[slotOf(room)]
}

// bucketTags are the hash tags of every bucket.
func (k Keys) bucketTags() []string {
	if !k.perSlot {
		return []string{"all"}
	}
	return slotTags()[:]
}

// webhookDue holds a bucket's rooms with webhook events, scored by when
// their next delivery is due (ms): now when an event is new, the lease's
// end while an instance delivers, the next retry after a failure.
func (k Keys) webhookDue(tag string) string { return k.prefix + "{" + tag + "}:bucket:webhooks" }

// webhookDead holds a bucket's dead letters by webhook id, webhookDeadOrder
// the same ids scored by when they died.
func (k Keys) webhookDead(tag string) string { return k.prefix + "{" + tag + "}:bucket:dead" }
func (k Keys) webhookDeadOrder(tag string) string {
	return k.prefix + "{" + tag + "}:bucket:dead:order"
}

// presenceRooms holds a bucket's rooms with presence entries, scored by
// the earliest expiry among them, so that some instance sweeps a room that
// no instance watches any more.
func (k Keys) presenceRooms(tag string) string { return k.prefix + "{" + tag + "}:bucket:presence" }

// webhookOutbox is room's stream of webhook events not yet delivered,
// webhookLease the token of the instance delivering them, webhookTries the
// attempts at the oldest one.
func (k Keys) webhookOutbox(room string) string { return k.prefix + "{" + room + "}:webhooks" }
func (k Keys) webhookLease(room string) string  { return k.prefix + "{" + room + "}:webhooks:lease" }
func (k Keys) webhookTries(room string) string  { return k.prefix + "{" + room + "}:webhooks:tries" }

// roomIndex holds a bucket's rooms scored by their last post (ms), for
// the room directory (GET /rooms); the post script keeps it.
func (k Keys) roomIndex(tag string) string { return k.prefix + "{" + tag + "}:bucket:rooms" }
