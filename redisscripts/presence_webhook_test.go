package redisscripts

import (
	"slices"
	"testing"
	"time"

	"roomcast/broker/chat"
)

// outboxTypes is room's outbox as "type data" lines.
func outboxTypes(t *testing.T, s *Store, room string) []string {
	t.Helper()
	entries, err := s.rdb.XRange(t.Context(), s.keys.webhookOutbox(room), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Values["type"].(string)+" "+e.Values["data"].(string))
	}
	return out
}

// TestPresenceWritesOutbox checks that the presence script queues
// room.occupied and member.joined with the first stream, nothing for a
// second instance's stream of the same user, and member.left and
// room.vacated when the entries expire, found by a sweep of any caller
// (no instance, no users: as the dead-instance sweep does) and listed by
// DuePresenceRooms until then.
func TestPresenceWritesOutbox(t *testing.T) {
	store, _, _ := newStore(t, StoreOptions{WebhookEvents: chat.WebhookEventTypes})
	ctx := t.Context()
	room := `r.1`
	a, b := "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
	ttl := 300 * time.Millisecond
	if _, err := store.SyncPresence(ctx, room, chat.PresenceSync{Instance: a, Live: []string{"ann", "bob"}, LiveTTL: ttl, LeavingTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SyncPresence(ctx, room, chat.PresenceSync{Instance: b, Live: []string{"ann"}, LiveTTL: ttl, LeavingTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	want := []string{`room.occupied {"room":"r.1"}`, `member.joined {"room":"r.1","user":"ann"}`, `member.joined {"room":"r.1","user":"bob"}`}
	if got := outboxTypes(t, store, room); !slices.Equal(got, want) {
		t.Fatalf("outbox after the joins %q, want %q", got, want)
	}
	if due, err := store.DueRooms(ctx, 10); err != nil || !slices.Equal(due, []string{room}) {
		t.Fatalf("due webhook rooms %v %v", due, err)
	}
	if due, err := store.DuePresenceRooms(ctx, 10); err != nil || len(due) != 0 {
		t.Fatalf("presence rooms due before the expiry: %v %v", due, err)
	}

	// Both instances die; their entries expire.
	deadline := time.Now().Add(5 * time.Second)
	for {
		due, err := store.DuePresenceRooms(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(due, []string{room}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the room never became due for a sweep")
		}
		time.Sleep(20 * time.Millisecond) // waits for Redis's clock: no event to await
	}
	p, err := store.SyncPresence(ctx, room, chat.PresenceSync{})
	if err != nil || p.Count != 0 || len(p.Left) != 2 {
		t.Fatalf("sweep %+v %v, want both gone", p, err)
	}
	got := outboxTypes(t, store, room)[3:]
	slices.Sort(got[:2]) // the users' leaves come in entry order
	want = []string{`member.left {"room":"r.1","user":"ann"}`, `member.left {"room":"r.1","user":"bob"}`, `room.vacated {"room":"r.1"}`}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox after the sweep %q, want %q", got, want)
	}
	if due, err := store.DuePresenceRooms(ctx, 10); err != nil || len(due) != 0 {
		t.Fatalf("presence rooms due after the sweep: %v %v", due, err)
	}
	if p, _ := store.SyncPresence(ctx, room, chat.PresenceSync{}); len(p.Left) != 0 || len(outboxTypes(t, store, room)) != 6 {
		t.Fatalf("a second sweep found %v and queued more", p.Left)
	}
}

// TestPresenceWebhookFilter checks that only the types WEBHOOK_EVENTS
// names are queued, and that with none of presence's nothing is indexed.
func TestPresenceWebhookFilter(t *testing.T) {
	store, _, _ := newStore(t, StoreOptions{WebhookEvents: []string{chat.EventMemberLeft, chat.EventRoomOccupied}})
	ctx := t.Context()
	ttl := 100 * time.Millisecond
	if _, err := store.SyncPresence(ctx, "r", chat.PresenceSync{Instance: "aaaaaaaaaaaaaaaa", Live: []string{"ann"}, LiveTTL: ttl, LeavingTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if got := outboxTypes(t, store, "r"); !slices.Equal(got, []string{`room.occupied {"room":"r"}`}) {
		t.Fatalf("outbox %q, want room.occupied only", got)
	}

	off, _, rdb2 := newStore(t, StoreOptions{WebhookEvents: []string{chat.EventMessageCreated}})
	if _, err := off.SyncPresence(ctx, "r", chat.PresenceSync{Instance: "aaaaaaaaaaaaaaaa", Live: []string{"ann"}, LiveTTL: ttl, LeavingTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := rdb2.Keys(ctx, "*webhook*").Result(); len(keys) != 0 {
		t.Fatalf("keys %v without presence webhooks", keys)
	}
	if keys, _ := rdb2.Keys(ctx, "*bucket:presence*").Result(); len(keys) != 0 {
		t.Fatalf("keys %v without presence webhooks", keys)
	}
}
