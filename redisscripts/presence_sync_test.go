package redisscripts

import (
	"slices"
	"testing"
	"time"

	"roomcast/broker/chat"
)

func TestSyncPresence(t *testing.T) {
	store, srv, rdb := newStore(t, StoreOptions{})
	other := NewStore(srv.Client(), NewKeys("test:"), StoreOptions{HistoryMax: 10}) // a second instance
	const a, b = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
	sync := func(s *Store, p chat.PresenceSync) chat.Presence {
		t.Helper()
		p.LiveTTL, p.LeavingTTL = cmpDur(p.LiveTTL, time.Minute), cmpDur(p.LeavingTTL, time.Minute)
		got, err := s.SyncPresence(t.Context(), "r", p)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	got := sync(store, chat.PresenceSync{Instance: a, Live: []string{"ann", "bob"}, List: 10})
	if !slices.Equal(got.Joined, []string{"ann", "bob"}) || len(got.Left) != 0 || got.Count != 2 || len(got.Users) != 2 {
		t.Fatalf("first sync = %+v, want ann and bob joined", got)
	}
	if d := time.Since(got.Time); d < -time.Minute || d > time.Minute || got.Users[0].Since != got.Time {
		t.Fatalf("time %v, since %v: want Redis's clock now", got.Time, got.Users[0].Since)
	}
	// The same users from another instance, and again from the first: no
	// join twice.
	if got := sync(other, chat.PresenceSync{Instance: b, Live: []string{"bob", "cy"}, List: 1}); !slices.Equal(got.Joined, []string{"cy"}) ||
		got.Count != 3 || len(got.Users) != 1 {
		t.Fatalf("second instance = %+v, want only cy joined, 3 present, 1 listed", got)
	}
	if got := sync(store, chat.PresenceSync{Instance: a, Live: []string{"ann", "bob"}}); len(got.Joined)+len(got.Left) != 0 || got.Users != nil {
		t.Fatalf("refresh = %+v, want no change and no list", got)
	}
	// bob leaves the first instance but stays on the second: no leave.
	if got := sync(store, chat.PresenceSync{Instance: a, Live: []string{"ann"}, Leaving: []string{"bob"}, LeavingTTL: time.Millisecond}); len(got.Left) != 0 {
		t.Fatalf("leaving = %+v", got)
	}
	waitFor(t, "bob's entry on the first instance is swept", func() bool {
		if got := sync(other, chat.PresenceSync{List: 10}); got.Count != 3 || len(got.Left) != 0 {
			t.Fatalf("after bob left one of two instances: %+v, want 3 present, nobody left", got)
		}
		return rdb.ZScore(t.Context(), "test:{r}:presence", a+"bob").Err() != nil // swept
	})
	// cy's instance stops refreshing: cy's entry expires, and one sweep
	// (whichever instance runs it) reports the leave, once.
	sync(other, chat.PresenceSync{Instance: b, Live: []string{"bob", "cy"}, LiveTTL: 50 * time.Millisecond})
	var left []string
	waitFor(t, "cy's entry expired", func() bool {
		got := sync(store, chat.PresenceSync{Instance: a, Live: []string{"ann"}})
		left = append(left, got.Left...)
		return got.Count == 1
	})
	if got := sync(other, chat.PresenceSync{}); len(got.Left) != 0 {
		t.Fatalf("second sweep reported %v again", got.Left)
	}
	if !slices.Equal(left, []string{"bob", "cy"}) {
		t.Fatalf("left = %v, want bob and cy, once each", left)
	}
}

func TestSyncPresenceRefusesBadInstance(t *testing.T) {
	store, _, _ := newStore(t, StoreOptions{})
	if _, err := store.SyncPresence(t.Context(), "r", chat.PresenceSync{Instance: "short", Live: []string{"u"}}); err == nil {
		t.Fatalf("a short instance id was accepted")
	}
}

func TestAdmitTyping(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{})
	at, ok, err := store.AdmitTyping(t.Context(), "r", "ann", time.Minute)
	if err != nil || !ok || time.Since(at) > time.Minute {
		t.Fatalf("first = %v %v %v, want admitted now", at, ok, err)
	}
	if _, ok, err := store.AdmitTyping(t.Context(), "r", "ann", time.Minute); ok || err != nil {
		t.Fatalf("second within the window admitted (%v)", err)
	}
	if _, ok, _ := store.AdmitTyping(t.Context(), "r", "bob", time.Minute); !ok {
		t.Fatalf("another user refused")
	}
	if ttl := rdb.PTTL(t.Context(), "test:{r}:typing:3:ann").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("typing mark TTL = %v", ttl)
	}
	if _, ok, _ := store.AdmitTyping(t.Context(), "r", "cy", time.Millisecond); !ok {
		t.Fatalf("cy refused")
	}
	waitFor(t, "cy's typing window passed", func() bool {
		_, ok, _ := store.AdmitTyping(t.Context(), "r", "cy", time.Millisecond)
		return ok
	})
}

func TestPublishEvent(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{})
	sub := rdb.Subscribe(t.Context(), NewKeys("test:").Channel("r"))
	defer sub.Close()
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := store.PublishEvent(t.Context(), "r", "typing", []byte(`{"user":"ann"}`)); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.ReceiveMessage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := msg.Payload, "!typing\n{\"user\":\"ann\"}"; got != want {
		t.Fatalf("payload = %q, want %q", got, want)
	}
	for _, bad := range []struct{ name, data string }{
		{"Typing", `{}`}, {"", `{}`}, {"a\nb", `{}`}, {"typing", ""}, {"typing", "{\n}"}, {"typing", `[1]`},
	} {
		if err := store.PublishEvent(t.Context(), "r", bad.name, []byte(bad.data)); err == nil {
			t.Fatalf("PublishEvent(%q, %q) accepted", bad.name, bad.data)
		}
	}
}

func cmpDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
