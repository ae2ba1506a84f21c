package redisscripts

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// TestChangesTrimWithHistory: changes take positions from the seq counter
// posts use; when posts trim history, the log keeps the changes from the
// oldest retained message on, an after read yields an unbroken run of
// positions from there (messages and changes merged), and the unread
// bookkeeping keeps every retained message that is not a tombstone.
func TestChangesTrimWithHistory(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{HistoryMax: 3, RoomTTL: time.Hour})
	ctx := t.Context()
	post := func(text string) chat.ID {
		p, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	change := func(c chat.Change) {
		c.Room, c.User = "r", "u"
		if _, err := store.Change(ctx, c); err != nil {
			t.Fatalf("change %+v: %v", c, err)
		}
	}
	m1, _, m3 := post("1"), post("2"), post("3")
	change(chat.Change{ID: m1, Text: "1 edited"}) // position 4
	change(chat.Change{ID: m3, Delete: true})     // position 5
	change(chat.Change{ID: m1, Text: "1 again"})  // position 6
	post("7")                                     // trims 1
	post("8")                                     // trims 2
	epoch := m1.Epoch

	page, err := store.History(ctx, "r", chat.Query{Direction: chat.After, Cursor: chat.ID{Epoch: epoch, Seq: 2}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var positions []int64
	for _, e := range page.Messages {
		id, err := chat.IDOf(e)
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, id.Seq)
	}
	if want := []int64{3, 4, 5, 6, 7, 8}; !slices.Equal(positions, want) || page.Reset != nil || page.Position.Seq != 8 {
		t.Fatalf("after 2: positions %v, reset %+v, position %v; want %v, no reset, position 8", positions, page.Reset, page.Position, want)
	}
	if ev, m := chat.EntryOf(page.Messages[2]); ev != chat.EventDelete || chat.VersionOf(m) != 2 {
		t.Fatalf("entry at 5 = %s %s, want the delete of 3", ev, m)
	}

	// A post that trims drops the changes before the oldest message.
	post("9") // trims 3: oldest is 7
	logged, err := rdb.ZRangeWithScores(ctx, "test:{r}:log", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) != 0 {
		t.Fatalf("log after history's oldest became 7: %v, want empty", logged)
	}
	live, err := rdb.ZRange(ctx, "test:{r}:live", 0, -1).Result()
	if err != nil || !slices.Equal(live, []string{"7", "8", "9"}) {
		t.Fatalf("live = %v, %v; want 7 8 9", live, err)
	}
	for _, key := range []string{"test:{r}:meta", "test:{r}:history", "test:{r}:live"} {
		if ttl, err := rdb.PTTL(ctx, key).Result(); err != nil || ttl <= 0 {
			t.Fatalf("PTTL %s = %v, %v; want ROOM_TTL", key, ttl, err)
		}
	}
	change(chat.Change{ID: chat.ID{Epoch: epoch, Seq: 9}, Text: "9 edited"})
	if ttl, err := rdb.PTTL(ctx, "test:{r}:log").Result(); err != nil || ttl <= 0 {
		t.Fatalf("PTTL of the log = %v, %v; want ROOM_TTL", ttl, err)
	}
}

// TestChangeOfAMessageStoredBeforeVersions: a message written before
// messages had a version is version 1, and can be edited (also under
// If-Match "1") and deleted.
func TestChangeOfAMessageStoredBeforeVersions(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{HistoryMax: 100})
	ctx := t.Context()
	p, err := store.Post(ctx, chat.Post{Room: "old", User: "u", Text: "new style"})
	if err != nil {
		t.Fatal(err)
	}
	// The same room's next message as yesterday's post script wrote it.
	id := chat.ID{Epoch: p.ID.Epoch, Seq: p.ID.Seq + 1}
	old := `{"id":"` + id.String() + `","seq":` + strconv.FormatInt(id.Seq, 10) + `,"room":"old","user":"u","text":"yesterday","time":"2026-12-03T10:00:00.000Z"}`
	if err := rdb.ZAdd(ctx, store.keys.history("old"), redis.Z{Score: float64(id.Seq), Member: old}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HIncrBy(ctx, store.keys.meta("old"), "seq", 1).Err(); err != nil {
		t.Fatal(err)
	}
	edited, err := store.Change(ctx, chat.Change{Room: "old", ID: id, User: "u", Text: "fixed", IfMatch: []int64{1}})
	if err != nil || chat.VersionOf(edited.JSON) != 2 {
		t.Fatalf("edit = %s, %v; want version 2", edited.JSON, err)
	}
	deleted, err := store.Change(ctx, chat.Change{Room: "old", ID: id, User: "u", Delete: true})
	if err != nil || chat.VersionOf(deleted.JSON) != 3 {
		t.Fatalf("delete = %s, %v; want version 3", deleted.JSON, err)
	}
}
