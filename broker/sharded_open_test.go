package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// TestShardedFirstListenWaitsForTheSubscription posts one message right
// after each room's first Subscribe returned. The hub checks rooms only
// hourly here, so nothing repairs a message published before the room's
// SSUBSCRIBE was confirmed: it arrives only if Listen waited for the
// confirmation (RoomAwaiter) before reading the room's position.
func TestShardedFirstListenWaitsForTheSubscription(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{
		HistoryMax: 100, IdempotencyTTL: time.Hour, Sharded: true})
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, ClientBuffer: 16, DeliveryCheckInterval: time.Hour,
		RedisTimeout: 5 * time.Second, Shards: broker.NewShardRouter(rdb),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; rdb.Close() })
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Run("ephemeral", func(t *testing.T) {
		l := &eventListener{got: make(chan *broker.Message, 8)}
		if _, err := hub.Listen(t.Context(), "typing", l); err != nil {
			t.Fatal(err)
		}
		defer hub.Unlisten("typing", l)
		for _, payload := range []string{"!typing", "!typing\n{\"user\":\"u\"}"} { // malformed, then an event
			if _, err := store.PublishRoom(t.Context(), "typing", payload); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case m := <-l.got:
			if m.Room != "typing" || m.Event != "typing" || string(m.Data) != `{"user":"u"}` {
				t.Fatalf("got %+v, want the typing event of room typing", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no ephemeral event within 10s")
		}
	})
	for i := range 20 {
		room := fmt.Sprint("fresh", i)
		sub := subscribe(t, hub, room)
		if _, err := store.Post(t.Context(), chat.Post{Room: room, User: "u", Text: "first"}); err != nil {
			t.Fatal(err)
		}
		expectSequence(t, sub, 1, 1)
	}
}

// eventListener is a Listener that keeps what it is given, events included.
type eventListener struct{ got chan *broker.Message }

func (l *eventListener) Deliver(m *broker.Message) bool {
	select {
	case l.got <- m:
		return true
	default:
		return false
	}
}

func (l *eventListener) Dropped(error) {}
