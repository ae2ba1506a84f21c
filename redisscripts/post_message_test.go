package redisscripts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newStore returns a Store on a fresh redis-server, configured as main
// configures its client, and that client.
func newStore(t *testing.T, opts StoreOptions) (*Store, *redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	if opts.HistoryMax == 0 {
		opts.HistoryMax = 1000
	}
	if opts.IdempotencyTTL == 0 {
		opts.IdempotencyTTL = time.Hour
	}
	return NewStore(rdb, NewKeys("test:"), opts), srv, rdb
}

// luaFunction cuts the local function name out of a script's source, so
// that a test can run it alone.
func luaFunction(t *testing.T, source, name string) string {
	t.Helper()
	start := strings.Index(source, "local function "+name+"(")
	if start < 0 {
		t.Fatalf("no local function %s in the script", name)
	}
	end := strings.Index(source[start:], "\nend\n")
	if end < 0 {
		t.Fatalf("local function %s does not end with an unindented end", name)
	}
	return source[start : start+end+len("\nend\n")]
}

// runLuaFunction calls a one-argument function of post_message.lua in
// Redis for every argument and returns the results.
func runLuaFunction(t *testing.T, rdb *redis.Client, source, name string, args []int64) []string {
	t.Helper()
	script := luaFunction(t, source, name) + `
local out = {}
for i = 1, #ARGV do out[i] = ` + name + `(tonumber(ARGV[i])) end
return out`
	argv := make([]any, len(args))
	for i, a := range args {
		argv[i] = a
	}
	got, err := rdb.Eval(t.Context(), script, nil, argv...).StringSlice()
	if err != nil {
		t.Fatalf("run %s in Redis: %v", name, err)
	}
	if len(got) != len(args) {
		t.Fatalf("%s returned %d results for %d arguments", name, len(got), len(args))
	}
	return got
}

// testMillis are Unix times in milliseconds at the edges of the calendar
// arithmetic, followed by random ones up to year 9999.
func testMillis(t *testing.T) []int64 {
	t.Helper()
	var ms []int64
	for _, s := range []string{
		"1970-01-01T00:00:00.000Z", "1970-01-01T23:59:59.999Z", "1970-01-02T00:00:00.000Z",
		"1972-02-29T12:00:00.001Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:00:00.000Z",
		"2000-02-28T23:59:59.999Z", "2000-02-29T00:00:00.000Z", "2000-03-01T00:00:00.000Z",
		"2024-02-29T23:59:59.999Z", "2024-12-31T23:59:59.999Z", "2025-03-01T00:00:00.000Z",
		"2038-01-19T03:14:07.999Z", "2038-01-19T03:14:08.000Z", "2100-02-28T23:59:59.999Z",
		"2100-03-01T00:00:00.000Z", "2400-02-29T10:20:30.040Z", "9999-12-31T23:59:59.999Z",
	} {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, tm.UnixMilli())
	}
	ms = append(ms, time.Now().UnixMilli())
	maxMillis := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ms = append(ms, r.Int64N(maxMillis))
	}
	return ms
}

// TestRFC3339MatchesGo checks the script's civil-date conversion, which
// Redis's Lua needs because it has no os.date, against Go's time package.
func TestRFC3339MatchesGo(t *testing.T) {
	t.Parallel()
	_, _, rdb := newStore(t, StoreOptions{})
	ms := testMillis(t)
	got := runLuaFunction(t, rdb, clockSource, "rfc3339", ms)
	for i, m := range ms {
		want := time.UnixMilli(m).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if got[i] != want {
			t.Fatalf("rfc3339(%d) = %q, want %q", m, got[i], want)
		}
	}
}

// TestRFC3339RoundTrips checks rfc3339_ms, which reads the times rfc3339
// writes back (the edit window), on the same times.
func TestRFC3339RoundTrips(t *testing.T) {
	t.Parallel()
	_, _, rdb := newStore(t, StoreOptions{})
	ms := testMillis(t)
	script := luaFunction(t, clockSource, "rfc3339") + luaFunction(t, clockSource, "rfc3339_ms") + `
local out = {}
for i = 1, #ARGV do out[i] = string.format('%d', rfc3339_ms(rfc3339(tonumber(ARGV[i])))) end
return out`
	argv := make([]any, len(ms))
	for i, m := range ms {
		argv[i] = m
	}
	got, err := rdb.Eval(t.Context(), script, nil, argv...).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if n, err := strconv.ParseFloat(got[i], 64); err != nil || int64(n) != m {
			t.Fatalf("rfc3339_ms(rfc3339(%d)) = %s", m, got[i])
		}
	}
}

func TestBase36MatchesGo(t *testing.T) {
	t.Parallel()
	_, _, rdb := newStore(t, StoreOptions{})
	ms := append([]int64{0, 1, 35, 36, 1295, 1296}, testMillis(t)...)
	got := runLuaFunction(t, rdb, postMessageSource, "base36", ms)
	for i, m := range ms {
		if want := strconv.FormatInt(m, 36); got[i] != want {
			t.Fatalf("base36(%d) = %q, want %q", m, got[i], want)
		}
	}
}

// storedMessage is the JSON the post script stores.
type storedMessage struct {
	ID   string `json:"id"`
	Seq  int64  `json:"seq"`
	Room string `json:"room"`
	User string `json:"user"`
	Text string `json:"text"`
	Time string `json:"time"`
	// Version is 1 for a posted message.
	Version int64 `json:"version"`
}

func decodeStored(t *testing.T, data []byte) storedMessage {
	t.Helper()
	var m storedMessage
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stored message %s: %v", data, err)
	}
	return m
}

func TestPostStoresNumberedMessages(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	before, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var epoch string
	for i := range 3 {
		text := fmt.Sprintf("line %d \"quoted\" \\ \n\u2028 <b>", i)
		posted, err := store.Post(ctx, chat.Post{Room: "r.1", User: "ann", Text: text})
		if err != nil {
			t.Fatalf("Post: %v", err)
		}
		if posted.Replayed {
			t.Fatalf("Post without idempotency key reported a replay")
		}
		m := decodeStored(t, posted.JSON)
		if got, want := m.Seq, int64(i+1); got != want || posted.ID.Seq != want {
			t.Fatalf("seq = %d (id %v), want %d", got, posted.ID, want)
		}
		if got, want := m.ID, posted.ID.String(); got != want {
			t.Fatalf("id in JSON = %q, Posted.ID = %q", got, want)
		}
		if i == 0 {
			epoch = posted.ID.Epoch
		}
		if posted.ID.Epoch != epoch {
			t.Fatalf("epoch changed from %q to %q within a room", epoch, posted.ID.Epoch)
		}
		if m.Room != "r.1" || m.User != "ann" || m.Text != text {
			t.Fatalf("stored %+v, want room r.1, user ann, text %q", m, text)
		}
		if strings.ContainsAny(string(posted.JSON), "\n\r") {
			t.Fatalf("stored JSON %q spans lines", posted.JSON)
		}
		at, err := time.Parse(time.RFC3339, m.Time)
		if err != nil {
			t.Fatalf("time %q: %v", m.Time, err)
		}
		if at.Before(before.Truncate(time.Millisecond)) || at.After(before.Add(10*time.Second)) {
			t.Fatalf("time %v is not shortly after Redis TIME %v", at, before)
		}
	}
	epochStart, err := strconv.ParseInt(epoch, 36, 64)
	if err != nil {
		t.Fatalf("epoch %q is not base 36: %v", epoch, err)
	}
	if d := time.UnixMicro(epochStart).Sub(before); d < -time.Microsecond || d > 10*time.Second {
		t.Fatalf("epoch %q is %v away from Redis TIME at the first post", epoch, d)
	}
}

func TestPostUsesOnlyPrefixedHashTaggedKeys(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	if _, err := store.Post(ctx, chat.Post{Room: "lobby", User: "u", Text: "t", IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The room's keys (meta, history, read markers, live messages, one
	// idempotency key), the poster's index of rooms, written by a command
	// of its own outside the script (indexRoom), and the bucket's room
	// index, in the room's slot on a Cluster.
	if len(keys) != 7 {
		t.Fatalf("keys = %q, want meta, history, read, live, one idempotency key, the user's rooms and the room index", keys)
	}
	for _, k := range keys {
		if k == store.keys.userRooms("u") || k == store.keys.roomIndex(store.keys.bucketTag("lobby")) {
			continue
		}
		if !strings.HasPrefix(k, "test:{lobby}:") {
			t.Fatalf("key %q does not start with the prefix and the room's hash tag", k)
		}
	}
}

func TestPostIdempotency(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{IdempotencyTTL: time.Minute})
	ctx := t.Context()
	p := chat.Post{Room: "r", User: "u", Text: "hello", IdempotencyKey: "abc"}
	first, err := store.Post(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := store.Post(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || string(again.JSON) != string(first.JSON) || again.ID != first.ID {
		t.Fatalf("repeated post = %+v, want a replay of %s", again, first.JSON)
	}
	ttl, err := rdb.PTTL(ctx, "test:{r}:idem:1:u:abc").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Minute {
		t.Fatalf("idempotency key TTL = %v, want up to 1m", ttl)
	}
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "hello!", IdempotencyKey: "abc"}); !errors.Is(err, chat.ErrIdempotencyConflict) {
		t.Fatalf("other text reusing the key: err = %v, want ErrIdempotencyConflict", err)
	}
	// A key belongs to one user in one room.
	for _, other := range []chat.Post{
		{Room: "r2", User: "u", Text: "hello", IdempotencyKey: "abc"},
		{Room: "r", User: "v", Text: "hello", IdempotencyKey: "abc"},
	} {
		if p, err := store.Post(ctx, other); err != nil || p.Replayed {
			t.Fatalf("same key, %+v: %+v, %v; want a new message", other, p, err)
		}
	}
	if n, err := rdb.ZCard(ctx, "test:{r}:history").Result(); err != nil || n != 2 {
		t.Fatalf("history length = %d, %v; want 2", n, err)
	}
}

func TestPostIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	var wg sync.WaitGroup
	results := make([]chat.Posted, 50)
	errs := make([]error, 50)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "once", IdempotencyKey: "same"})
		})
	}
	wg.Wait()
	replays := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("post %d: %v", i, errs[i])
		}
		if r.ID != results[0].ID {
			t.Fatalf("post %d stored %v, post 0 stored %v", i, r.ID, results[0].ID)
		}
		if r.Replayed {
			replays++
		}
	}
	if replays != 49 {
		t.Fatalf("%d replays, want 49", replays)
	}
	if n, err := rdb.ZCard(ctx, "test:{r}:history").Result(); err != nil || n != 1 {
		t.Fatalf("history length = %d, %v; want 1", n, err)
	}
}

func TestStoreUnavailableWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	store, srv, _ := newStore(t, StoreOptions{})
	ctx := t.Context()
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	calls := map[string]func() error{
		"Post": func() error {
			_, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "t"})
			return err
		},
		"History": func() error {
			_, err := store.History(ctx, "r", chat.Query{Direction: chat.Latest, Limit: 10})
			return err
		},
		"Positions": func() error {
			_, err := store.Positions(ctx, []string{"r", "s"})
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, chat.ErrUnavailable) {
			t.Fatalf("%s with Redis down: err = %v, want ErrUnavailable", name, err)
		}
		d := time.Since(start)
		t.Logf("%s failed after %v", name, d)
		if d > 3*time.Second {
			t.Fatalf("%s with Redis down took %v", name, d)
		}
	}
}

func TestStoreUnavailableOnDeadline(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t, StoreOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "t"}); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Post after its deadline: err = %v, want ErrUnavailable", err)
	}
}

func TestRoomTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{name: "kept for ever", ttl: 0}, {name: "expires when idle", ttl: time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			store, _, rdb := newStore(t, StoreOptions{RoomTTL: tc.ttl})
			postN(t, store, "r", 2)
			for _, key := range []string{"test:{r}:meta", "test:{r}:history"} {
				got, err := rdb.PTTL(t.Context(), key).Result()
				if err != nil {
					t.Fatal(err)
				}
				if tc.ttl == 0 && got != -1 {
					t.Fatalf("%s has TTL %v, want none", key, got)
				}
				// Each post renews the TTL.
				if tc.ttl > 0 && (got <= tc.ttl-time.Minute || got > tc.ttl) {
					t.Fatalf("%s has TTL %v, want about %v", key, got, tc.ttl)
				}
			}
		})
	}
}
