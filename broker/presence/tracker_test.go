package presence_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/broker/presence"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var keys = redisscripts.NewKeys("test:")

// instance is one process's tracker on a shared Redis.
type instance struct {
	*presence.Tracker
	stop context.CancelFunc // a crash: the tracker stops, nothing is cleaned up
}

func startTracker(t *testing.T, rdb redis.UniversalClient, grace, interval time.Duration) *instance {
	t.Helper()
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 10})
	tr := presence.New(presence.Options{Store: store, PresenceGrace: grace, PresenceInterval: interval, PresenceMaxUsers: 100, RedisTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = tr.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return &instance{Tracker: tr, stop: stop}
}

// event is a join or leave seen on a room's channel.
type event struct {
	name string
	presence.Event
}

// watch returns the presence events published to room.
func watch(t *testing.T, rdb *redis.Client, room string) <-chan event {
	t.Helper()
	sub := rdb.Subscribe(t.Context(), keys.Channel(room))
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := make(chan event, 100)
	go func() {
		defer close(out)
		for m := range sub.Channel() {
			name, data, ok := strings.Cut(strings.TrimPrefix(m.Payload, "!"), "\n")
			var ev event
			if !ok || json.Unmarshal([]byte(data), &ev.Event) != nil {
				t.Errorf("malformed event %q", m.Payload)
				continue
			}
			ev.name = name
			out <- ev
		}
	}()
	t.Cleanup(func() { sub.Close() })
	return out
}

func expect(t *testing.T, events <-chan event, name, user string, within time.Duration) {
	t.Helper()
	select {
	case ev := <-events:
		if ev.name != name || ev.User != user || ev.Room == "" {
			t.Fatalf("event %+v, want %s of %s", ev, name, user)
		}
		if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
			t.Fatalf("event time %q: %v", ev.Time, err)
		}
	case <-time.After(within):
		t.Fatalf("no %s of %s within %v", name, user, within)
	}
}

func expectNone(t *testing.T, events <-chan event, d time.Duration) {
	t.Helper()
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func TestJoinAndLeaveAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const grace, interval = 400 * time.Millisecond, 100 * time.Millisecond
	a := startTracker(t, srv.Client(), grace, interval)
	b := startTracker(t, srv.Client(), grace, interval)
	events := watch(t, srv.Client(), "r")

	leaveA := a.Enter("r", "ann")
	expect(t, events, "join", "ann", 5*time.Second)
	leaveB := b.Enter("r", "ann") // the same user on another instance
	again := a.Enter("r", "ann")  // and a second stream on the first
	again()
	leaveA() // ann still has a stream on b
	expectNone(t, events, grace+3*interval)

	// A reconnection within the grace period is neither leave nor join.
	leaveB()
	time.Sleep(grace / 4) // the client's reconnection delay, not a synchronisation
	leaveB = b.Enter("r", "ann")
	expectNone(t, events, grace+3*interval)

	start := time.Now()
	leaveB()
	expect(t, events, "leave", "ann", 10*time.Second)
	if d := time.Since(start); d < grace {
		t.Fatalf("leave after %v, before the grace period %v ended", d, grace)
	}
	p, err := a.Read(t.Context(), "r")
	if err != nil || p.Count != 0 || len(p.Users) != 0 {
		t.Fatalf("Read after the leave = %+v, %v; want nobody", p, err)
	}
}

// A crashed instance's users are gone from listings within Grace +
// Interval, and another instance publishes their leave, once.
func TestCrashedInstanceUsersLeave(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const grace, interval = 300 * time.Millisecond, 100 * time.Millisecond
	a := startTracker(t, srv.Client(), grace, interval)
	b := startTracker(t, srv.Client(), grace, interval)
	c := startTracker(t, srv.Client(), grace, interval)
	events := watch(t, srv.Client(), "r")

	a.Enter("r", "ann")
	expect(t, events, "join", "ann", 5*time.Second)
	b.Enter("r", "bob")
	expect(t, events, "join", "bob", 5*time.Second)
	c.Enter("r", "cy")
	expect(t, events, "join", "cy", 5*time.Second)
	p, err := b.Read(t.Context(), "r")
	if err != nil || p.Count != 3 || len(p.Users) != 3 {
		t.Fatalf("Read = %+v, %v; want 3 users", p, err)
	}

	a.stop()
	crashed := time.Now()
	expect(t, events, "leave", "ann", 10*time.Second)
	if d := time.Since(crashed); d < grace {
		t.Fatalf("leave %v after the crash, before the grace period %v", d, grace)
	}
	p, err = c.Read(t.Context(), "r")
	if err != nil || p.Count != 2 {
		t.Fatalf("Read = %+v, %v; want bob and cy", p, err)
	}
	expectNone(t, events, grace+3*interval) // b and c both swept; one leave only
}

func TestReadListsAtMostMaxUsers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	store := redisscripts.NewStore(srv.Client(), keys, redisscripts.StoreOptions{HistoryMax: 10})
	tr := presence.New(presence.Options{Store: store, PresenceGrace: time.Minute, PresenceInterval: time.Minute, PresenceMaxUsers: 2, RedisTimeout: time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = tr.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, u := range []string{"u1", "u2", "u3"} {
		tr.Enter("r", u)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := tr.Read(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if p.Count == 3 {
			if len(p.Users) != 2 {
				t.Fatalf("listed %d users, want MaxUsers 2", len(p.Users))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("count %d, want 3", p.Count)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
