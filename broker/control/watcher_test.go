package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/broker/chat"
	"roomcast/broker/control"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeStore is the state in Redis, as the test sets it.
type fakeStore struct {
	mu   sync.Mutex
	bans []chat.Ban
	revs []chat.Revocation
}

func (f *fakeStore) AllBans(context.Context) ([]chat.Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.Ban(nil), f.bans...), nil
}

func (f *fakeStore) Revocations(context.Context) ([]chat.Revocation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.Revocation(nil), f.revs...), nil
}

func (f *fakeStore) set(bans []chat.Ban, revs []chat.Revocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bans, f.revs = bans, revs
}

const channel = "test:control"

// startWatcher runs a watcher on srv until the test ends; its changes
// arrive on the returned channel.
func startWatcher(t *testing.T, srv *redistest.Server, store *fakeStore) (*control.Watcher, <-chan chat.Control) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	changes := make(chan chat.Control, 16)
	w := control.New(rdb, control.Options{Channel: channel, Store: store, RedisTimeout: time.Second,
		CheckInterval: 200 * time.Millisecond, OnChange: func(c chat.Control) { changes <- c }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := w.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	return w, changes
}

func awaitChange(t *testing.T, changes <-chan chat.Control) chat.Control {
	t.Helper()
	select {
	case c := <-changes:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10s")
		return chat.Control{}
	}
}

func publish(t *testing.T, srv *redistest.Server, c chat.Control) {
	t.Helper()
	payload, _ := json.Marshal(c)
	if err := srv.Client().Publish(t.Context(), channel, payload).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherAppliesMessages(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	now := time.Now()
	ended := now.Add(-time.Second)
	store := &fakeStore{bans: []chat.Ban{{Room: "r", User: "ann", At: now}, {Room: "r", User: "old", Until: &ended, At: now}}}
	w, changes := startWatcher(t, srv, store)
	if c := awaitChange(t, changes); c.Op != chat.ControlBan || c.Ban.User != "ann" {
		t.Fatalf("first change %+v, want ann's ban read at start", c)
	}
	if _, ok := w.Ban("r", "ann"); !ok {
		t.Fatal("ann not banned after the first read")
	}
	if _, ok := w.Ban("r", "old"); ok {
		t.Fatal("a ban that has ended applies")
	}
	if _, ok := w.Ban("s", "ann"); ok {
		t.Fatal("ann banned from another room")
	}

	publish(t, srv, chat.Control{Op: chat.ControlBan, Ban: &chat.Ban{Room: "r", User: "bob", At: now}})
	if c := awaitChange(t, changes); c.Ban.User != "bob" {
		t.Fatalf("change %+v, want bob's ban", c)
	}
	publish(t, srv, chat.Control{Op: chat.ControlLift, Ban: &chat.Ban{Room: "r", User: "ann"}})
	publish(t, srv, chat.Control{Op: chat.ControlRevoke,
		Revocation: &chat.Revocation{User: "cy", IssuedBefore: now, Expires: now.Add(time.Hour)}})
	if c := awaitChange(t, changes); c.Op != chat.ControlRevoke {
		t.Fatalf("change %+v, want the revocation (a lift is not reported)", c)
	}
	if _, ok := w.Ban("r", "ann"); ok {
		t.Fatal("ann still banned after the lift")
	}
	for _, tc := range []struct {
		name string
		iat  time.Time
		want bool
	}{
		{name: "issued before", iat: now.Add(-time.Minute), want: true},
		{name: "issued after", iat: now.Add(time.Minute), want: false},
		{name: "no iat", want: true},
	} {
		if got := w.Revoked("cy", "", tc.iat); got != tc.want {
			t.Errorf("%s: Revoked = %v, want %v", tc.name, got, tc.want)
		}
	}
	if w.Revoked("dan", "", now.Add(-time.Minute)) {
		t.Error("another user's token revoked")
	}

	// A change applied by the instance that made it holds at once, and the
	// channel's copy of it changes nothing more.
	w.Apply(chat.Control{Op: chat.ControlBan, Ban: &chat.Ban{Room: "s", User: "eve", At: now}})
	if _, ok := w.Ban("s", "eve"); !ok {
		t.Fatal("an applied ban does not hold at once")
	}
	if c := awaitChange(t, changes); c.Ban == nil || c.Ban.User != "eve" {
		t.Fatalf("change %+v, want eve's ban reported", c)
	}
	publish(t, srv, chat.Control{Op: chat.ControlBan, Ban: &chat.Ban{Room: "s", User: "eve", At: now}})
	awaitChange(t, changes)
	if _, ok := w.Ban("s", "eve"); !ok {
		t.Fatal("eve's ban lost to the channel's copy")
	}
}

// TestWatcherRereadsAfterReconnect: what changed while the watcher was not
// subscribed (here: with no message at all) is found by the read after it
// subscribes again, and reported.
func TestWatcherRereadsAfterReconnect(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	store := &fakeStore{}
	w, changes := startWatcher(t, srv, store)
	if err := w.Ready(); err != nil {
		t.Fatalf("Ready = %v after the first read, want nil", err)
	}
	srv.Kill()
	waitReady := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for (w.Ready() == nil) != want {
			if time.Now().After(deadline) {
				t.Fatalf("Ready = %v, want ready %v", w.Ready(), want)
			}
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
	}
	waitReady(false)
	if !errors.Is(w.Ready(), control.ErrNotReady) {
		t.Fatalf("Ready = %v, want ErrNotReady", w.Ready())
	}
	now := time.Now()
	store.set([]chat.Ban{{Room: "r", User: "bob", At: now}},
		[]chat.Revocation{{JTI: "t-1", Expires: now.Add(time.Hour)}})
	srv.Restart()
	got := map[string]bool{}
	for range 2 {
		c := awaitChange(t, changes)
		got[c.Op] = true
	}
	if !got[chat.ControlBan] || !got[chat.ControlRevoke] {
		t.Fatalf("changes after the reconnect %v, want the ban and the revocation", got)
	}
	if _, ok := w.Ban("r", "bob"); !ok {
		t.Fatal("bob not banned after the re-read")
	}
	if !w.Revoked("ann", "t-1", now) {
		t.Fatal("token t-1 not revoked after the re-read")
	}
	waitReady(true)
}
