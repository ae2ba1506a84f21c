package broker

import "context"

// subscriber is how a hub hears Redis, chosen once by New: the
// patternSubscriber (one PSUBSCRIBE for every room of the deployment), the
// shardSubscriber (BROKER_MODE=sharded: SSUBSCRIBE per room with local
// listeners, on its Redis Cluster shard), or noSubscriber for a hub fed
// only through Receive.
//
// A subscriber hands every message to Hub.Receive, reports whether it
// receives with Hub.reportHealth (the first nil report opens the hub's
// start gate), and has rooms it lost and regained repaired with
// Hub.checkRooms.
type subscriber interface {
	// run subscribes and receives until ctx ends.
	run(ctx context.Context)
	// opened is told that a room got its first local listener, closed that
	// it lost its last. Both run with the room's stripe locked, so calls
	// for one room come in order: they must not block nor call the hub.
	opened(room string)
	closed(room string)
	// await returns once messages published to a room just opened are
	// received, so that its position can be read without missing any; it
	// is called without any lock of the hub. If it gives up first (ctx
	// ended, or its own deadline), the subscriber must have the room
	// checked once it receives.
	await(ctx context.Context, room string)
}

// noSubscriber is the subscriber of a hub without Redis Pub/Sub: messages
// come only through Receive, and the hub counts as started from New.
type noSubscriber struct{}

func (noSubscriber) run(ctx context.Context)       { <-ctx.Done() }
func (noSubscriber) opened(string)                 {}
func (noSubscriber) closed(string)                 {}
func (noSubscriber) await(context.Context, string) {}

var (
	_ subscriber = noSubscriber{}
	_ subscriber = (*patternSubscriber)(nil)
	_ subscriber = (*shardSubscriber)(nil)
)
