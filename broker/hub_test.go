package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var keys = redisscripts.NewKeys("roomcast:")

// node is one roomcast process's broker and store on a shared Redis.
type node struct {
	rdb   *redis.Client
	store *redisscripts.Store
	hub   *broker.Hub
	stop  func()
}

type nodeConfig struct {
	buffer        int
	checkInterval time.Duration
	addr          string // Redis address for the hub's connections, if not the server's
}

func startNode(t *testing.T, srv *redistest.Server, cfg nodeConfig) *node {
	t.Helper()
	if cfg.buffer == 0 {
		cfg.buffer = 1024
	}
	if cfg.checkInterval == 0 {
		cfg.checkInterval = 200 * time.Millisecond
	}
	if cfg.addr == "" {
		cfg.addr = srv.Addr
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.addr, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 10000, IdempotencyTTL: time.Hour})
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, ClientBuffer: cfg.buffer,
		DeliveryCheckInterval: cfg.checkInterval, RedisTimeout: 500 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	stopped := false
	n := &node{rdb: rdb, store: store, hub: hub, stop: func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			rdb.Close()
		}
	}}
	t.Cleanup(n.stop)
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) post(t *testing.T, room, text string) chat.Posted {
	t.Helper()
	p, err := n.store.Post(t.Context(), chat.Post{Room: room, User: "u", Text: text})
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	return p
}

func subscribe(t *testing.T, h *broker.Hub, room string) *broker.Subscription {
	t.Helper()
	sub, err := h.Subscribe(t.Context(), room)
	if err != nil {
		t.Fatalf("subscribe %s: %v", room, err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// receive returns the next message of sub, failing after a timeout.
func receive(t *testing.T, sub *broker.Subscription) *broker.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription closed: %v", sub.Err())
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message within 10s")
	}
	return nil
}

// expectSequence receives messages until it has seen ids from..to of one
// epoch, failing on any gap, duplicate or reordering.
func expectSequence(t *testing.T, sub *broker.Subscription, from, to int64) {
	t.Helper()
	for want := from; want <= to; want++ {
		m := receive(t, sub)
		if m.ID.Seq != want {
			t.Fatalf("received seq %d, want %d", m.ID.Seq, want)
		}
	}
}

func TestHubDeliversEachRoomToItsSubscribers(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{})
	a1, a2, b := subscribe(t, n.hub, "a"), subscribe(t, n.hub, "a"), subscribe(t, n.hub, "b")
	if got := a1.Start(); got != (chat.ID{}) {
		t.Fatalf("start of a new room = %v, want zero", got)
	}
	var posted []chat.Posted
	for i := range 5 {
		posted = append(posted, n.post(t, "a", fmt.Sprint("a", i)))
	}
	pb := n.post(t, "b", "b0")
	for _, sub := range []*broker.Subscription{a1, a2} {
		for _, want := range posted {
			got := receive(t, sub)
			if got.ID != want.ID || string(got.Data) != string(want.JSON) || got.Room != "a" {
				t.Fatalf("received %v %s, want %v %s", got.ID, got.Data, want.ID, want.JSON)
			}
		}
	}
	if got := receive(t, b); got.ID != pb.ID {
		t.Fatalf("room b received %v, want %v", got.ID, pb.ID)
	}
	late := subscribe(t, n.hub, "a")
	if got := late.Start(); got != posted[4].ID {
		t.Fatalf("start of a late subscriber = %v, want %v", got, posted[4].ID)
	}
}

func TestHubEncodesEachMessageOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 100, IdempotencyTTL: time.Hour})
	encoded := make(chan string, 10)
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, ClientBuffer: 16, DeliveryCheckInterval: time.Second, RedisTimeout: time.Second,
		Encoder: countingEncoder(encoded),
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	subs := []*broker.Subscription{subscribe(t, hub, "r"), subscribe(t, hub, "r"), subscribe(t, hub, "r")}
	p, err := store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var frames []*byte
	for _, s := range subs {
		m := receive(t, s)
		if frame := string(m.IDLine) + string(m.Body); frame != "frame "+p.ID.String() {
			t.Fatalf("frame = %q", frame)
		}
		frames = append(frames, &m.IDLine[0])
	}
	if frames[0] != frames[1] || frames[1] != frames[2] {
		t.Fatalf("subscribers got different frame buffers; want one shared encoding")
	}
	if got := len(encoded); got != 1 {
		t.Fatalf("Encode ran %d times, want 1", got)
	}
}

// countingEncoder sends the id of every message it encodes.
type countingEncoder chan<- string

func (c countingEncoder) Message(id chat.ID, _ []byte) (idLine, body []byte) {
	c <- id.String()
	frame := []byte("frame " + id.String())
	return frame[:6:6], frame[6:]
}

func (countingEncoder) Event(string, []byte) []byte { return nil }

func TestTwoHubsOnOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	n1, n2 := startNode(t, srv, nodeConfig{}), startNode(t, srv, nodeConfig{})
	s1, s2 := subscribe(t, n1.hub, "r"), subscribe(t, n2.hub, "r")
	n1.post(t, "r", "via one")
	n2.post(t, "r", "via two")
	expectSequence(t, s1, 1, 2)
	expectSequence(t, s2, 1, 2)
}

func TestSlowSubscriberIsDroppedWithoutDelayingOthers(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{buffer: 4})
	slow, fast := subscribe(t, n.hub, "r"), subscribe(t, n.hub, "r")
	for i := int64(1); i <= 20; i++ {
		n.post(t, "r", "m")
		if got := receive(t, fast); got.ID.Seq != i {
			t.Fatalf("fast subscriber got seq %d, want %d", got.ID.Seq, i)
		}
	}
	for range slow.C() { // drain what was queued before the drop
	}
	if !errors.Is(slow.Err(), broker.ErrSlow) {
		t.Fatalf("slow subscriber ended with %v, want ErrSlow", slow.Err())
	}
}

func TestStoppedHubClosesSubscriptions(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{})
	sub := subscribe(t, n.hub, "r")
	n.stop()
	expectClosed(t, sub, broker.ErrClosed)
	if _, err := n.hub.Subscribe(t.Context(), "r"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Subscribe after stop: %v, want ErrClosed", err)
	}
	if err := n.hub.Ready(); !errors.Is(err, broker.ErrNotReady) {
		t.Fatalf("Ready after stop = %v, want ErrNotReady", err)
	}
}

func TestClosedSubscriptionNoLongerReceives(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{})
	gone, stays := subscribe(t, n.hub, "r"), subscribe(t, n.hub, "r")
	gone.Close()
	gone.Close() // idempotent
	n.post(t, "r", "m")
	receive(t, stays)
	if _, ok := <-gone.C(); ok {
		t.Fatalf("closed subscription received a message")
	}
	if !errors.Is(gone.Err(), broker.ErrUnsubscribed) {
		t.Fatalf("Err = %v, want ErrUnsubscribed", gone.Err())
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// expectClosed waits for sub's channel to close without a message first,
// and checks the reason, failing after 10s.
func expectClosed(t *testing.T, sub *broker.Subscription, reason error) {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if ok {
			t.Fatalf("received %v, want the subscription closed with %v", m.ID, reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscription not closed within 10s, want %v", reason)
	}
	if err := sub.Err(); !errors.Is(err, reason) {
		t.Fatalf("Err = %v, want %v", err, reason)
	}
}
