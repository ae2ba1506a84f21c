package redisscripts

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// TestPostWritesOneOutboxEvent checks that the post script puts exactly one
// event in the outbox per stored message: a replay under the same
// idempotency key adds none, nor does a refused conflict.
func TestPostWritesOneOutboxEvent(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{WebhookEvents: []string{chat.EventMessageCreated}})
	ctx := t.Context()
	first, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "a", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "a", IdempotencyKey: "k"}); err != nil || !again.Replayed {
		t.Fatalf("replay: %v %+v", err, again)
	}
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "b", IdempotencyKey: "k"}); !errors.Is(err, chat.ErrIdempotencyConflict) {
		t.Fatalf("conflict: %v", err)
	}
	second, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "c"})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := rdb.XRange(ctx, store.keys.webhookOutbox("r"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Values["data"] != string(first.JSON) || entries[1].Values["data"] != string(second.JSON) ||
		entries[0].Values["type"] != "message.created" {
		t.Fatalf("outbox %+v, want the two stored messages", entries)
	}
	due, err := store.DueRooms(ctx, 10)
	if err != nil || len(due) != 1 || due[0] != "r" {
		t.Fatalf("due rooms %v %v, want [r]", due, err)
	}
}

// TestClaimIsExclusive checks that of two claimants of a due room one gets
// it, the other only once the lease ended, and that the delivered events
// are gone.
func TestClaimIsExclusive(t *testing.T) {
	store, _, _ := newStore(t, StoreOptions{WebhookEvents: []string{chat.EventMessageCreated}})
	ctx := t.Context()
	for _, text := range []string{"a", "b", "c"} {
		if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := store.ClaimOutbox(ctx, "r", "token-a", 300*time.Millisecond, nil, 2)
	if err != nil || !a.Held || len(a.Events) != 2 {
		t.Fatalf("first claim %+v %v, want held with 2 events", a, err)
	}
	if b, err := store.ClaimOutbox(ctx, "r", "token-b", time.Second, nil, 2); err != nil || b.Held {
		t.Fatalf("second claim during the lease %+v %v, want not held", b, err)
	}
	if due, _ := store.DueRooms(ctx, 10); len(due) != 0 {
		t.Fatalf("due rooms during the lease: %v", due)
	}
	// token-a delivered the first event, then went silent.
	if r, err := store.ClaimOutbox(ctx, "r", "token-a", 300*time.Millisecond, []string{a.Events[0].Entry}, 0); err != nil || !r.Held {
		t.Fatalf("renewal %+v %v", r, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var b chat.OutboxBatch
	for !b.Held && time.Now().Before(deadline) {
		if b, err = store.ClaimOutbox(ctx, "r", "token-b", time.Second, nil, 10); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.Events) != 2 || b.Events[0].ID != a.Events[1].ID {
		t.Fatalf("takeover %+v, want the 2 undelivered events from %s", b, a.Events[1].ID)
	}
	if r, err := store.ClaimOutbox(ctx, "r", "token-a", time.Second, nil, 1); err != nil || r.Held {
		t.Fatalf("the old holder claims again: %+v %v, want not held", r, err)
	}
	if r, err := store.ClaimOutbox(ctx, "r", "token-b", time.Second, []string{b.Events[0].Entry, b.Events[1].Entry}, 10); err != nil || r.Held || len(r.Events) != 0 {
		t.Fatalf("claim after the last delivery %+v %v, want nothing left", r, err)
	}
	if due, _ := store.DueRooms(ctx, 10); len(due) != 0 {
		t.Fatalf("due rooms with an empty outbox: %v", due)
	}
}

// TestDeadEventsPageThroughTies checks that paging lists every dead letter
// once, in order, also when more of them died in one millisecond than a
// page holds.
func TestDeadEventsPageThroughTies(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	tag := store.keys.bucketTag("r")
	var want []string
	for i := range 7 {
		id := chat.WebhookID("r", fmt.Sprintf("%d-%d", 100+i, i))
		at := int64(1000)
		if i < 2 {
			at = 999
		}
		letter := fmt.Sprintf(`{"id":%q,"room":"r","type":"message.created","timestamp_ms":1,"attempts":1,"last_error":"x","last_status":0,"dead_at_ms":%d,"data":{}}`, id, at)
		if err := rdb.HSet(ctx, store.keys.webhookDead(tag), id, letter).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ZAdd(ctx, store.keys.webhookDeadOrder(tag), redis.Z{Score: float64(at), Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	slices.Sort(want[2:])
	var got []string
	cursor := ""
	for range 10 {
		page, err := store.DeadEvents(ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			got = append(got, ev.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
}

// TestChangesWriteOutbox checks that an edit and a delete put
// message.edited and message.deleted, with the new version, in the outbox
// after the message's message.created; that a refused change and a replay
// add nothing; and that WEBHOOK_EVENTS without them adds nothing.
func TestChangesWriteOutbox(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{WebhookEvents: chat.WebhookEventTypes})
	ctx := t.Context()
	posted, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "a"})
	if err != nil {
		t.Fatal(err)
	}
	edited, err := store.Change(ctx, chat.Change{Room: "r", ID: posted.ID, User: "u", Text: "b", IdempotencyKey: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := store.Change(ctx, chat.Change{Room: "r", ID: posted.ID, User: "u", Text: "b", IdempotencyKey: "e"}); err != nil || !again.Replayed {
		t.Fatalf("replay %+v %v", again, err)
	}
	if _, err := store.Change(ctx, chat.Change{Room: "r", ID: posted.ID, User: "someone else", Text: "c"}); !errors.Is(err, chat.ErrNotAuthor) {
		t.Fatalf("edit by another: %v", err)
	}
	deleted, err := store.Change(ctx, chat.Change{Room: "r", ID: posted.ID, User: "u", Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := rdb.XRange(ctx, store.keys.webhookOutbox("r"), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Values["type"].(string)+" "+e.Values["data"].(string))
	}
	want := []string{"message.created " + string(posted.JSON), "message.edited " + string(edited.JSON), "message.deleted " + string(deleted.JSON)}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox %q, want %q", got, want)
	}

	off, _, rdb2 := newStore(t, StoreOptions{WebhookEvents: []string{chat.EventMessageCreated}})
	p, err := off.Post(ctx, chat.Post{Room: "r", User: "u", Text: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Change(ctx, chat.Change{Room: "r", ID: p.ID, User: "u", Text: "b"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb2.XLen(ctx, off.keys.webhookOutbox("r")).Result(); n != 1 {
		t.Fatalf("outbox of %d events without message.edited in WEBHOOK_EVENTS, want 1", n)
	}
}
