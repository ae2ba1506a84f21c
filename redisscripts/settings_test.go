package redisscripts

import (
	"errors"
	"testing"
	"time"

	"roomcast/broker/chat"
)

func TestSettingsRoundTrip(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t, StoreOptions{})
	ctx := t.Context()
	got, err := store.Settings(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if got != (chat.Settings{}) {
		t.Fatalf("settings of a new room = %+v, want none", got)
	}
	want := chat.Settings{Title: "T", Topic: "about", HistoryMax: 5, TTL: time.Hour, ReadOnly: true, SlowMode: 3 * time.Second}
	if err := store.SetSettings(ctx, "r", want); err != nil {
		t.Fatal(err)
	}
	if got, err = store.Settings(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("settings = %+v, want %+v", got, want)
	}
	// A replace: what the new settings leave out is the default again.
	if err := store.SetSettings(ctx, "r", chat.Settings{Title: "U"}); err != nil {
		t.Fatal(err)
	}
	if got, err = store.Settings(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if got != (chat.Settings{Title: "U"}) {
		t.Fatalf("settings after a replace = %+v, want only the title", got)
	}
}

func TestPostReadOnly(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	if err := store.SetSettings(ctx, "r", chat.Settings{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	_, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "no", IdempotencyKey: "k"})
	if !errors.Is(err, chat.ErrReadOnly) {
		t.Fatalf("post to a read-only room: err = %v, want ErrReadOnly", err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != store.keys.settings("r") {
		t.Fatalf("keys after a refused post = %q, want only the settings", keys)
	}
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "mod", Text: "yes", Moderator: true}); err != nil {
		t.Fatalf("a moderator's post to a read-only room: %v", err)
	}
}

func TestPostSlowMode(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	if err := store.SetSettings(ctx, "r", chat.Settings{SlowMode: time.Minute}); err != nil {
		t.Fatal(err)
	}
	first := chat.Post{Room: "r", User: "u", Text: "one", IdempotencyKey: "k1"}
	if _, err := store.Post(ctx, first); err != nil {
		t.Fatal(err)
	}
	// A retry of the same post finds it; it is not a second post.
	if posted, err := store.Post(ctx, first); err != nil || !posted.Replayed {
		t.Fatalf("retry in slow mode = %+v, %v, want the replayed message", posted, err)
	}
	_, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "two", IdempotencyKey: "k2"})
	var slow *chat.SlowModeError
	if !errors.As(err, &slow) || !errors.Is(err, chat.ErrSlowMode) {
		t.Fatalf("second post in slow mode: err = %v, want a SlowModeError", err)
	}
	if slow.RetryAfter <= 0 || slow.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter = %v, want within the slow mode's minute", slow.RetryAfter)
	}
	if n, _ := rdb.Exists(ctx, store.keys.idempotency("r", "u", "k2")).Result(); n != 0 {
		t.Fatal("a refused post stored its idempotency key")
	}
	if n, _ := rdb.ZCard(ctx, store.keys.history("r")).Result(); n != 1 {
		t.Fatalf("history holds %d messages, want 1", n)
	}
	// Others, and moderators, are not held up.
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "v", Text: "other"}); err != nil {
		t.Fatalf("another user's post: %v", err)
	}
	for range 2 {
		if _, err := store.Post(ctx, chat.Post{Room: "r", User: "mod", Text: "m", Moderator: true}); err != nil {
			t.Fatalf("a moderator's post in slow mode: %v", err)
		}
	}
}

func TestPostFollowsRoomHistoryMaxAndTTL(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{HistoryMax: 100, RoomTTL: time.Hour})
	ctx := t.Context()
	if err := store.SetSettings(ctx, "r", chat.Settings{HistoryMax: 2, TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := rdb.ZCard(ctx, store.keys.history("r")).Result(); n != 2 {
		t.Fatalf("history holds %d messages, want the room's history_max 2", n)
	}
	ttl, err := rdb.PTTL(ctx, store.keys.history("r")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("history expires in %v, want the room's ttl of 10m", ttl)
	}
	// Another room keeps the server's limits.
	if _, err := store.Post(ctx, chat.Post{Room: "other", User: "u", Text: "m"}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := rdb.PTTL(ctx, store.keys.history("other")).Result(); ttl <= 59*time.Minute {
		t.Fatalf("another room's history expires in %v, want ROOM_TTL's hour", ttl)
	}
}
