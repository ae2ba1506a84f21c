package redisscripts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

// pipelineCounter is a go-redis hook counting the round trips of script
// calls a client makes: pipelines of them, and EVALSHA or EVAL alone.
type pipelineCounter struct{ n atomic.Int64 }

func (h *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScriptCall(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && isScriptCall(cmds[0]) { // not a new connection's handshake
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

func isScriptCall(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

// countPipelines makes rdb count its script round trips from now on.
func countPipelines(rdb *redis.Client) *pipelineCounter {
	h := &pipelineCounter{}
	rdb.AddHook(h)
	return h
}

// call builds the script call of p as Post would send it.
func call(t *testing.T, ctx context.Context, store *Store, p chat.Post) *scriptCall {
	t.Helper()
	keys, args, err := store.postCall(p)
	if err != nil {
		t.Fatal(err)
	}
	return &scriptCall{ctx: ctx, keys: keys, args: args, done: make(chan struct{})}
}

// await returns the result of a call that send has finished.
func await(t *testing.T, c *scriptCall) (chat.Posted, error) {
	t.Helper()
	select {
	case <-c.done:
	default:
		t.Fatal("call not finished after send returned")
	}
	if c.err != nil {
		return chat.Posted{}, c.err
	}
	return postedOf(c.reply)
}

// historyLen is how many messages room holds.
func historyLen(t *testing.T, rdb redis.Cmdable, store *Store, room string) int64 {
	t.Helper()
	n, err := rdb.ZCard(t.Context(), store.keys.history(room)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
}

// pauseWrites holds every write command (scripts included) on srv until
// the returned func is called, or the test ends.
func pauseWrites(t *testing.T, srv *redistest.Server) (unpause func()) {
	t.Helper()
	admin := srv.Client()
	if err := admin.Do(t.Context(), "CLIENT", "PAUSE", 30000, "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	unpause = sync.OnceFunc(func() { admin.Do(context.Background(), "CLIENT", "UNPAUSE") })
	t.Cleanup(unpause)
	return unpause
}

// blockedClients is how many connections srv holds blocked (by a pause).
func blockedClients(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	info, err := srv.Client().Info(t.Context(), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if i := strings.Index(info, "blocked_clients:"); i >= 0 {
		fmt.Sscanf(info[i+len("blocked_clients:"):], "%d", &n)
	}
	return n
}

// queued is how many calls wait for the batch in flight.
func (b *batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

type result struct {
	posted chat.Posted
	err    error
}

// postAsync posts p in a goroutine and returns where its result arrives.
func postAsync(ctx context.Context, store *Store, p chat.Post) <-chan result {
	out := make(chan result, 1)
	go func() {
		posted, err := store.Post(ctx, p)
		out <- result{posted, err}
	}()
	return out
}

func receive(t *testing.T, c <-chan result) result {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("post did not return")
		return result{}
	}
}

// TestPostConcurrentBatches: many goroutines posting at once each get the
// reply to their own post, and every post is stored exactly once.
func TestPostConcurrentBatches(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{})
	pipelines := countPipelines(rdb)
	const goroutines, posts, rooms = 16, 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range posts {
				p := chat.Post{Room: fmt.Sprintf("r%d", (g+i)%rooms), User: fmt.Sprintf("u%d", g), Text: fmt.Sprintf("g%d-i%d", g, i)}
				posted, err := store.Post(t.Context(), p)
				if err != nil {
					errs <- fmt.Errorf("post %s: %w", p.Text, err)
					return
				}
				m := decodeStored(t, posted.JSON)
				if m.Room != p.Room || m.User != p.User || m.Text != p.Text || posted.Replayed {
					errs <- fmt.Errorf("post %+v got reply %s (replayed %v)", p, posted.JSON, posted.Replayed)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for r := range rooms {
		room := fmt.Sprintf("r%d", r)
		msgs, err := rdb.ZRangeWithScores(t.Context(), store.keys.history(room), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, z := range msgs {
			if int(z.Score) != i+1 {
				t.Fatalf("room %s: message %d has seq %v, want %d", room, i, z.Score, i+1)
			}
			text := decodeStored(t, []byte(z.Member.(string))).Text
			if seen[text] {
				t.Fatalf("%s stored twice", text)
			}
			seen[text] = true
		}
	}
	if got, want := len(seen), goroutines*posts; got != want {
		t.Fatalf("%d messages stored, want %d", got, want)
	}
	t.Logf("%d posts in %d round trips", goroutines*posts, pipelines.n.Load())
}

// TestPostsQueuedBehindABatchShareOnePipeline: posts arriving while a
// pipeline is in flight go out together in the next one.
func TestPostsQueuedBehindABatchShareOnePipeline(t *testing.T) {
	store, srv, rdb := newStore(t, StoreOptions{})
	if _, err := store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "warm up"}); err != nil {
		t.Fatal(err)
	}
	pipelines := countPipelines(rdb)
	unpause := pauseWrites(t, srv)
	first := postAsync(t.Context(), store, chat.Post{Room: "r", User: "u", Text: "first"})
	waitFor(t, "the first post is held by the pause", func() bool { return blockedClients(t, srv) == 1 })
	const n = 10
	rest := make([]<-chan result, n)
	for i := range rest {
		rest[i] = postAsync(t.Context(), store, chat.Post{Room: "r", User: "u", Text: fmt.Sprint("queued ", i)})
	}
	waitFor(t, "the posts queue", func() bool { return store.posts.queued() == n })
	unpause()
	for _, c := range append([]<-chan result{first}, rest...) {
		if r := receive(t, c); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if got, want := pipelines.n.Load(), int64(2); got != want {
		t.Fatalf("%d round trips for 1 + %d posts, want %d", got, n, want)
	}
	if got, want := historyLen(t, rdb, store, "r"), int64(n+2); got != want {
		t.Fatalf("history holds %d messages, want %d", got, want)
	}
}

// TestPostIdempotencyWithinOneBatch: the same idempotency key twice in one
// pipeline stores one message; the second call replays it, or conflicts
// when its content differs.
func TestPostIdempotencyWithinOneBatch(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	// A connection with the script loaded, so that one pipeline is all.
	if _, err := store.Post(ctx, chat.Post{Room: "warm-up", User: "u", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	pipelines := countPipelines(rdb)
	p := chat.Post{Room: "r", User: "u", Text: "once", IdempotencyKey: "k"}
	other := p
	other.Text = "other"
	batch := []*scriptCall{call(t, ctx, store, p), call(t, ctx, store, p), call(t, ctx, store, other)}
	store.posts.send(batch)
	first, err := await(t, batch[0])
	if err != nil || first.Replayed {
		t.Fatalf("first call: %+v, %v; want stored", first, err)
	}
	again, err := await(t, batch[1])
	if err != nil || !again.Replayed || again.ID != first.ID {
		t.Fatalf("same key in the same batch: %+v, %v; want a replay of %v", again, err, first.ID)
	}
	if _, err := await(t, batch[2]); !errors.Is(err, chat.ErrIdempotencyConflict) {
		t.Fatalf("same key, other text, same batch: err = %v, want ErrIdempotencyConflict", err)
	}
	if got := pipelines.n.Load(); got != 1 {
		t.Fatalf("%d pipelines, want the 3 calls in 1", got)
	}
	if got := historyLen(t, rdb, store, "r"); got != 1 {
		t.Fatalf("history holds %d messages, want 1", got)
	}
}

// TestPostAfterScriptFlush: EVALSHAs answered NOSCRIPT inside a batch are
// sent again with EVAL, and each post is stored once.
func TestPostAfterScriptFlush(t *testing.T) {
	store, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "before"}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	pipelines := countPipelines(rdb)
	var batch []*scriptCall
	for i := range 3 {
		batch = append(batch, call(t, ctx, store, chat.Post{Room: "r", User: "u", Text: fmt.Sprint("after ", i)}))
	}
	store.posts.send(batch)
	for i, c := range batch {
		posted, err := await(t, c)
		if err != nil {
			t.Fatalf("call %d after SCRIPT FLUSH: %v", i, err)
		}
		if got, want := posted.ID.Seq, int64(i+2); got != want {
			t.Fatalf("call %d stored seq %d, want %d", i, got, want)
		}
	}
	if got := pipelines.n.Load(); got != 2 {
		t.Fatalf("%d pipelines, want 2 (EVALSHA, then EVAL)", got)
	}
	if got := historyLen(t, rdb, store, "r"); got != 4 {
		t.Fatalf("history holds %d messages, want 4", got)
	}
	// EVAL loaded the script again: the next post needs one round trip.
	if _, err := store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "later"}); err != nil {
		t.Fatal(err)
	}
	if got := pipelines.n.Load(); got != 3 {
		t.Fatalf("%d round trips after one more post, want 3", got)
	}
}

// TestPostCancelledCallLeavesItsBatch: a call whose context ended before it
// was sent is not sent; a queued caller giving up returns at once; the
// other calls of the batch are not affected.
func TestPostCancelledCallLeavesItsBatch(t *testing.T) {
	t.Run("before sending", func(t *testing.T) {
		store, _, rdb := newStore(t, StoreOptions{})
		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		batch := []*scriptCall{
			call(t, t.Context(), store, chat.Post{Room: "r", User: "u", Text: "kept"}),
			call(t, cancelled, store, chat.Post{Room: "r", User: "u", Text: "cancelled"}),
		}
		store.posts.send(batch)
		if _, err := await(t, batch[0]); err != nil {
			t.Fatalf("call of a live context: %v", err)
		}
		if _, err := await(t, batch[1]); !errors.Is(err, context.Canceled) {
			t.Fatalf("call of a cancelled context: err = %v, want context.Canceled", err)
		}
		if got := historyLen(t, rdb, store, "r"); got != 1 {
			t.Fatalf("history holds %d messages, want 1: a cancelled call was sent", got)
		}
	})
	t.Run("queued", func(t *testing.T) {
		store, srv, rdb := newStore(t, StoreOptions{})
		unpause := pauseWrites(t, srv)
		first := postAsync(t.Context(), store, chat.Post{Room: "r", User: "u", Text: "first"})
		waitFor(t, "the first post is held by the pause", func() bool { return blockedClients(t, srv) == 1 })
		ctx, cancel := context.WithCancel(t.Context())
		gone := postAsync(ctx, store, chat.Post{Room: "r", User: "u", Text: "cancelled"})
		waitFor(t, "the post queues", func() bool { return store.posts.queued() == 1 })
		kept := postAsync(t.Context(), store, chat.Post{Room: "r", User: "u", Text: "kept"})
		waitFor(t, "the next post queues", func() bool { return store.posts.queued() == 2 })
		cancel()
		if r := receive(t, gone); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled post: err = %v, want context.Canceled", r.err)
		}
		unpause()
		for _, c := range []<-chan result{first, kept} {
			if r := receive(t, c); r.err != nil {
				t.Fatalf("post of the same batches as a cancelled one: %v", r.err)
			}
		}
		if got := historyLen(t, rdb, store, "r"); got != 2 {
			t.Fatalf("history holds %d messages, want 2: the cancelled post was sent", got)
		}
	})
}

// TestPostRedisLostMidBatch: when Redis goes away with a batch in flight,
// every post of the batch fails with ErrUnavailable, and none is sent again
// on its own.
func TestPostRedisLostMidBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lose    func(t *testing.T, srv *redistest.Server)
		restore func(srv *redistest.Server)
	}{
		{name: "server killed", lose: func(t *testing.T, srv *redistest.Server) { srv.Kill() }, restore: (*redistest.Server).Restart},
		{name: "connection killed", lose: func(t *testing.T, srv *redistest.Server) {
			err := srv.Client().Do(t.Context(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err()
			if err != nil {
				t.Fatal(err)
			}
		}, restore: func(*redistest.Server) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, srv, rdb := newStore(t, StoreOptions{})
			unpause := pauseWrites(t, srv)
			const n = 8
			batch := make([]*scriptCall, n)
			for i := range batch {
				batch[i] = call(t, t.Context(), store, chat.Post{Room: "r", User: "u", Text: fmt.Sprint("lost ", i)})
			}
			sent := make(chan struct{})
			go func() { store.posts.send(batch); close(sent) }()
			waitFor(t, "the batch is held by the pause", func() bool { return blockedClients(t, srv) == 1 })
			tc.lose(t, srv)
			<-sent
			for i, c := range batch {
				if _, err := await(t, c); !errors.Is(wrapRedisError("post", err), chat.ErrUnavailable) {
					t.Fatalf("post %d: err = %v, want one mapped to ErrUnavailable", i, err)
				}
			}
			tc.restore(srv)
			unpause()
			if _, err := store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "after"}); err != nil {
				t.Fatal(err)
			}
			if got := historyLen(t, rdb, store, "r"); got != 1 {
				t.Fatalf("history holds %d messages, want only the one posted after: a failed post was resent", got)
			}
		})
	}
}

// TestPostBatchesOnCluster: batches whose posts hash to different nodes are
// split by slot and each post is stored once, also after every node
// forgot the script.
func TestPostBatchesOnCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	opts, err := redis.ParseClusterURL(redistest.ClusterURL(nodes))
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	rdb := redis.NewClusterClient(opts)
	t.Cleanup(func() { rdb.Close() })
	store := NewStore(rdb, NewKeys("test:"), StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
	const rooms, perRoom = 12, 10
	postAll := func(round int) {
		var wg sync.WaitGroup
		errs := make(chan error, rooms*perRoom)
		for r := range rooms {
			for i := range perRoom {
				wg.Go(func() {
					p := chat.Post{Room: fmt.Sprint("room", r), User: "u", Text: fmt.Sprint(round, "-", i)}
					posted, err := store.Post(t.Context(), p)
					if err == nil && decodeStored(t, posted.JSON).Text != p.Text {
						err = fmt.Errorf("reply %s to post %q", posted.JSON, p.Text)
					}
					if err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	postAll(1)
	if err := rdb.ForEachMaster(t.Context(), func(ctx context.Context, node *redis.Client) error {
		return node.ScriptFlush(ctx).Err()
	}); err != nil {
		t.Fatal(err)
	}
	postAll(2)
	for r := range rooms {
		if got := historyLen(t, rdb, store, fmt.Sprint("room", r)); got != 2*perRoom {
			t.Fatalf("room%d holds %d messages, want %d", r, got, 2*perRoom)
		}
	}
}
