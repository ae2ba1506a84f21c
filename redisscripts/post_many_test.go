package redisscripts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

func TestPostManyStoresEachInOrder(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	if _, err := store.Post(ctx, chat.Post{Room: "b", User: "u", Text: "first", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	posts := []chat.Post{
		{Room: "a", User: "u", Text: "a1"},
		{Room: "b", User: "u", Text: "other", IdempotencyKey: "k"}, // the key's text was "first"
		{Room: "a", User: "u", Text: "a2"},
		{Room: "b", User: "u", Text: "first", IdempotencyKey: "k"}, // a replay
		{Room: "b", User: "v", Text: "b2"},
	}
	results := store.PostMany(ctx, posts)
	if len(results) != len(posts) {
		t.Fatalf("%d results for %d posts", len(results), len(posts))
	}
	if !errors.Is(results[1].Err, chat.ErrIdempotencyConflict) {
		t.Fatalf("result 1: err = %v, want ErrIdempotencyConflict", results[1].Err)
	}
	if r := results[3]; r.Err != nil || !r.Posted.Replayed || decodeStored(t, r.Posted.JSON).Seq != 1 {
		t.Fatalf("result 3 = %+v, want the replay of message 1", r)
	}
	for i, want := range map[int]struct {
		text string
		seq  int64
	}{0: {"a1", 1}, 2: {"a2", 2}, 4: {"b2", 2}} {
		r := results[i]
		if r.Err != nil || r.Posted.Replayed {
			t.Fatalf("result %d = %+v", i, r)
		}
		if m := decodeStored(t, r.Posted.JSON); m.Text != want.text || m.Seq != want.seq || m.Room != posts[i].Room {
			t.Fatalf("result %d stored %+v, want %q as seq %d", i, m, want.text, want.seq)
		}
	}
	if a, b := historyLen(t, rdb, store, "a"), historyLen(t, rdb, store, "b"); a != 2 || b != 2 {
		t.Fatalf("rooms hold %d and %d messages, want 2 and 2", a, b)
	}
}

// TestPostManyAfterScriptFlush: calls answered NOSCRIPT, which did not
// run, are sent once more as EVAL; none is stored twice.
func TestPostManyAfterScriptFlush(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	posts := make([]chat.Post, 20)
	for i := range posts {
		posts[i] = chat.Post{Room: fmt.Sprint("r", i%3), User: "u", Text: fmt.Sprint(i)}
	}
	for i, r := range store.PostMany(t.Context(), posts) {
		if r.Err != nil {
			t.Fatalf("post %d: %v", i, r.Err)
		}
	}
	for r, want := range []int64{7, 7, 6} {
		if got := historyLen(t, rdb, store, fmt.Sprint("r", r)); got != want {
			t.Fatalf("r%d holds %d messages, want %d", r, got, want)
		}
	}
}

// replyLoser dials connections that lose the reply to their first script
// calls, once per address: Redis receives and runs the calls, then the
// connection breaks before the client reads a byte of the answer, which a
// client configured to retry takes for a call worth sending again.
type replyLoser struct {
	ran func() bool // true once Redis ran every call the test sent

	mu    sync.Mutex
	fired map[string]bool // addresses whose connection lost a reply already
}

func (l *replyLoser) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &losingConn{Conn: conn, loser: l, addr: addr}, nil
}

// fire reports whether the connection to addr is the one to lose a reply.
func (l *replyLoser) fire(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fired[addr] {
		return false
	}
	if l.fired == nil {
		l.fired = make(map[string]bool)
	}
	l.fired[addr] = true
	return true
}

type losingConn struct {
	net.Conn
	loser    *replyLoser
	addr     string
	scripted bool // the client wrote a script call on it
}

func (c *losingConn) Write(p []byte) (int, error) {
	if bytes.Contains(bytes.ToLower(p), []byte("evalsha")) {
		c.scripted = true
	}
	return c.Conn.Write(p)
}

func (c *losingConn) Read(p []byte) (int, error) {
	if !c.scripted || !c.loser.fire(c.addr) {
		return c.Conn.Read(p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !c.loser.ran() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
	c.Conn.Close()
	return 0, io.ErrUnexpectedEOF
}

// TestPostsNeverResentAfterALostReply: a client that retries on its own
// (go-redis's defaults: MaxRetries 3; on a Cluster, MaxRedirects 3 for
// pipelines and single calls alike) must still send each post script at
// most once, or a call whose reply was lost after it ran stores its message
// twice. The calls fail as unavailable, and each message is stored once.
func TestPostsNeverResentAfterALostReply(t *testing.T) {
	t.Parallel()
	const rooms, perRoom = 6, 3
	batch := func() []chat.Post {
		var posts []chat.Post
		for r := range rooms {
			for i := range perRoom {
				posts = append(posts, chat.Post{Room: fmt.Sprint("room", r), User: "u", Text: fmt.Sprint(r, "-", i)})
			}
		}
		return posts
	}
	stored := func(t *testing.T, rdb redis.Cmdable, store *Store) func() int64 {
		return func() int64 {
			var n int64
			for r := range rooms {
				c, err := rdb.ZCard(context.Background(), store.keys.history(fmt.Sprint("room", r))).Result()
				if err != nil {
					t.Error(err)
				}
				n += c
			}
			return n
		}
	}
	check := func(t *testing.T, errs []error, count func() int64, want int64) {
		t.Helper()
		for i, err := range errs {
			if err != nil && !errors.Is(err, chat.ErrUnavailable) {
				t.Fatalf("post %d: err = %v, want nil or ErrUnavailable", i, err)
			}
		}
		if got := count(); got != want {
			t.Fatalf("rooms hold %d messages, want %d: a post script was sent again", got, want)
		}
	}
	standalone := func(t *testing.T) (*Store, redis.Cmdable, *replyLoser) {
		srv := redistest.Start(t)
		loser := &replyLoser{}
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Dialer: loser.dial}) // retries on
		t.Cleanup(func() { rdb.Close() })
		store := NewStore(rdb, NewKeys("test:"), StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
		// Loaded, so that the first calls run rather than answer NOSCRIPT.
		if err := postMessageScript.Load(t.Context(), srv.Client()).Err(); err != nil {
			t.Fatal(err)
		}
		return store, srv.Client(), loser
	}

	t.Run("PostMany", func(t *testing.T) {
		t.Parallel()
		store, direct, loser := standalone(t)
		count := stored(t, direct, store)
		loser.ran = func() bool { return count() == rooms*perRoom }
		var errs []error
		for _, r := range store.PostMany(t.Context(), batch()) {
			errs = append(errs, r.Err)
		}
		check(t, errs, count, rooms*perRoom)
	})
	t.Run("Post", func(t *testing.T) {
		t.Parallel()
		store, direct, loser := standalone(t)
		count := stored(t, direct, store)
		loser.ran = func() bool { return count() == 1 }
		_, err := store.Post(t.Context(), chat.Post{Room: "room0", User: "u", Text: "alone"})
		check(t, []error{err}, count, 1)
	})
	t.Run("PostMany on a Cluster", func(t *testing.T) {
		t.Parallel()
		nodes := redistest.StartCluster(t, 3)
		opts, err := redis.ParseClusterURL(redistest.ClusterURL(nodes))
		if err != nil {
			t.Fatal(err)
		}
		direct := redis.NewClusterClient(opts)
		t.Cleanup(func() { direct.Close() })
		if err := direct.ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
			return postMessageScript.Load(ctx, node).Err()
		}); err != nil {
			t.Fatal(err)
		}
		loser := &replyLoser{}
		opts.Dialer = loser.dial // MaxRedirects and MaxRetries: the defaults, which resend
		rdb := redis.NewClusterClient(opts)
		t.Cleanup(func() { rdb.Close() })
		store := NewStore(rdb, NewKeys("test:"), StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
		count := stored(t, direct, store)
		loser.ran = func() bool { return count() == rooms*perRoom }
		var errs []error
		failed := 0
		for _, r := range store.PostMany(t.Context(), batch()) {
			errs = append(errs, r.Err)
			if r.Err != nil {
				failed++
			}
		}
		check(t, errs, count, rooms*perRoom)
		if failed == 0 {
			t.Fatal("no reply was lost: the test tests nothing")
		}
	})
}
