package redisscripts

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

// directoryAll pages through the whole directory with limit, checking
// the order and that no room comes twice.
func directoryAll(t *testing.T, store *Store, q chat.DirectoryQuery) []chat.DirectoryRoom {
	t.Helper()
	var all []chat.DirectoryRoom
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("the directory does not end")
		}
		page, err := store.Directory(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Rooms...)
		if page.Next.IsZero() {
			break
		}
		q.After = page.Next
	}
	seen := map[string]bool{}
	for i, r := range all {
		if seen[r.Room] {
			t.Fatalf("room %s listed twice", r.Room)
		}
		seen[r.Room] = true
		if i > 0 {
			p := all[i-1]
			if c := cmp.Or(p.LastActivity.Compare(r.LastActivity), strings.Compare(p.Room, r.Room)); c <= 0 {
				t.Fatalf("room %s (%v) listed after %s (%v): want newest first", r.Room, r.LastActivity, p.Room, p.LastActivity)
			}
		}
	}
	return all
}

func roomNames(rooms []chat.DirectoryRoom) []string {
	var names []string
	for _, r := range rooms {
		names = append(names, r.Room)
	}
	return names
}

// testDirectory posts to rooms and pages through the directory of store.
func testDirectory(t *testing.T, store *Store, rdb redis.Cmdable) {
	ctx := t.Context()
	var want []string // rooms, by last post
	for i := range 30 {
		room := fmt.Sprintf("room%02d", i%23)
		if _, err := store.Post(ctx, chat.Post{Room: room, User: "u", Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		want = slices.DeleteFunc(want, func(r string) bool { return r == room })
		want = append(want, room)
	}
	if err := store.SetSettings(ctx, "room05", chat.Settings{Title: "Five"}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 4, 50} {
		all := directoryAll(t, store, chat.DirectoryQuery{Limit: limit})
		if len(all) != 23 {
			t.Fatalf("limit %d: %d rooms listed, want 23: %q", limit, len(all), roomNames(all))
		}
		// Posts in one millisecond tie; otherwise the last post decides.
		for i := 1; i < len(want); i++ {
			a, b := slices.Index(roomNames(all), want[i-1]), slices.Index(roomNames(all), want[i])
			if a < b && all[a].LastActivity.Before(all[b].LastActivity) {
				t.Fatalf("limit %d: %s listed before %s, posted to later", limit, want[i-1], want[i])
			}
		}
	}
	all := directoryAll(t, store, chat.DirectoryQuery{Limit: 50})
	for _, r := range all {
		var m struct {
			Room string
			Seq  int64
		}
		if err := json.Unmarshal(r.LastMessage, &m); err != nil || m.Room != r.Room || m.Seq != r.Seq {
			t.Fatalf("room %s: last_message %s, seq %d: want the room's latest message", r.Room, r.LastMessage, r.Seq)
		}
		if (r.Title == "Five") != (r.Room == "room05") {
			t.Fatalf("room %s has title %q", r.Room, r.Title)
		}
	}
	// Prefix and visibility.
	some := directoryAll(t, store, chat.DirectoryQuery{Limit: 2, Prefix: "room1"})
	if names := roomNames(some); len(names) != 10 {
		t.Fatalf("prefix room1: %q, want room10 to room19", names)
	}
	odd := directoryAll(t, store, chat.DirectoryQuery{Limit: 3, Visible: func(r string) bool { return r[len(r)-1]%2 == 1 }})
	if len(odd) != 11 {
		t.Fatalf("visible: %q, want the 11 odd rooms", roomNames(odd))
	}
	// An expired room is left out and forgotten.
	if err := rdb.Del(ctx, store.keys.meta("room07"), store.keys.history("room07")).Err(); err != nil {
		t.Fatal(err)
	}
	if names := roomNames(directoryAll(t, store, chat.DirectoryQuery{Limit: 50})); slices.Contains(names, "room07") || len(names) != 22 {
		t.Fatalf("after room07 expired: %q", names)
	}
	if _, err := rdb.ZScore(ctx, store.keys.roomIndex(store.keys.bucketTag("room07")), "room07").Result(); err != redis.Nil {
		t.Fatalf("room07 still indexed: %v", err)
	}
}

func TestDirectory(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	testDirectory(t, store, rdb)
}

func TestDirectoryOnCluster(t *testing.T) {
	t.Parallel()
	redistest.SkipIfShort(t, "starts a Redis Cluster")
	nodes := redistest.StartCluster(t, 3)
	opts, err := redis.ParseClusterURL(redistest.ClusterURL(nodes))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(opts)
	t.Cleanup(func() { rdb.Close() })
	store := NewStore(rdb, NewKeys("test:"), StoreOptions{HistoryMax: 100, IdempotencyTTL: time.Hour})
	testDirectory(t, store, rdb)

	// The settings' keys share the room's slot with the post script's.
	ctx := t.Context()
	if err := store.SetSettings(ctx, "slow", chat.Settings{SlowMode: time.Minute, HistoryMax: 1}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, chat.ErrSlowMode} {
		if _, err := store.Post(ctx, chat.Post{Room: "slow", User: "u", Text: "m"}); !errors.Is(err, want) {
			t.Fatalf("post %d in slow mode on a Cluster: err = %v, want %v", i, err, want)
		}
	}
	if err := store.SetSettings(ctx, "slow", chat.Settings{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Post(ctx, chat.Post{Room: "slow", User: "v", Text: "m"}); !errors.Is(err, chat.ErrReadOnly) {
		t.Fatalf("post to a read-only room on a Cluster: err = %v, want ErrReadOnly", err)
	}
}

func TestDirectoryWatchersAndUsers(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t, StoreOptions{})
	ctx := t.Context()
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SyncPresence(ctx, "r", chat.PresenceSync{Instance: "instance-aaaaaaa", Live: []string{"ann", "bob"},
		LiveTTL: time.Minute, LeavingTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	page, err := store.Directory(ctx, chat.DirectoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Rooms) != 1 || page.Rooms[0].Watchers != 2 || page.Rooms[0].Users != 2 {
		t.Fatalf("directory = %+v, want r with 2 watchers and 2 users", page.Rooms)
	}
}

// TestDirectoryManyRoomsPerBucket pages through rooms that share a few
// slot buckets, several to a bucket, so that a round reads only some of
// each bucket's rooms and must not skip the others.
func TestDirectoryManyRoomsPerBucket(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	store := NewStore(rdb, NewKeys("test:").PerSlotBuckets(), StoreOptions{HistoryMax: 10, IdempotencyTTL: time.Hour})
	bySlot := map[int][]string{}
	var slots []int
	for n := 0; len(slots) < 3; n++ {
		room := fmt.Sprint("r", n)
		s := slotOf(room)
		bySlot[s] = append(bySlot[s], room)
		if len(bySlot[s]) == 7 {
			slots = append(slots, s)
		}
	}
	var rooms []string
	for _, s := range slots {
		rooms = append(rooms, bySlot[s][:7]...)
	}
	// Bucket by bucket, so that the newest rooms of one bucket are all
	// newer than any of the next's; then interleaved.
	for _, order := range []func(i int) string{
		func(i int) string { return rooms[i] },
		func(i int) string { return rooms[i%3*7+i/3] },
	} {
		for i := range rooms {
			if _, err := store.Post(t.Context(), chat.Post{Room: order(i), User: "u", Text: "m"}); err != nil {
				t.Fatal(err)
			}
		}
		for _, limit := range []int{1, 2, 5, 100} {
			all := directoryAll(t, store, chat.DirectoryQuery{Limit: limit})
			if got, want := slices.Sorted(slices.Values(roomNames(all))), slices.Sorted(slices.Values(rooms)); !slices.Equal(got, want) {
				t.Fatalf("limit %d: listed %q, want %q", limit, got, want)
			}
		}
	}
}
