package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// postContinuously posts to room until stop is closed and returns how many
// posts succeeded; posts that fail (Redis down) are not counted.
func postContinuously(t *testing.T, n *node, room string, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var ok int64
		for {
			select {
			case <-stop:
				out <- ok
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := n.store.Post(ctx, chat.Post{Room: room, User: "u", Text: "m"})
			cancel()
			if err == nil {
				ok++
			}
		}
	}()
	return out
}

func TestNoLossWhenSubscriberConnectionIsKilled(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{buffer: 100000})
	sub := subscribe(t, n.hub, "r")
	admin := srv.Client()

	stop := make(chan struct{})
	posted := postContinuously(t, n, "r", stop)
	var last int64
	next := func() {
		m := receive(t, sub)
		if m.ID.Seq != last+1 {
			t.Fatalf("seq %d after %d", m.ID.Seq, last)
		}
		last = m.ID.Seq
	}
	for kill := range 5 {
		for range 50 { // live traffic flows between kills
			next()
		}
		if err := admin.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
	}
	for range 50 {
		next()
	}
	close(stop)
	total := <-posted
	for last < total {
		next()
	}
	t.Logf("%d messages, 5 subscriber connections killed", total)
}

func TestRecoveryAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	n := startNode(t, srv, nodeConfig{})
	sub := subscribe(t, n.hub, "r")
	n.post(t, "r", "before")
	expectSequence(t, sub, 1, 1)

	srv.Kill()
	waitUntil(t, "hub reports not ready", func() bool { return n.hub.Ready() != nil })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	start := time.Now()
	_, err := n.store.Post(ctx, chat.Post{Room: "r", User: "u", Text: "during"})
	cancel()
	if !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("post while Redis is down: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("post while Redis is down took %v", took)
	}

	srv.Restart()
	// Posts acknowledged after the restart reach the subscriber, whether
	// they were published before or after the hub subscribed again.
	n.post(t, "r", "after 1")
	n.post(t, "r", "after 2")
	expectSequence(t, sub, 2, 3)
	waitUntil(t, "hub ready again", func() bool { return n.hub.Ready() == nil })
}

func TestRedisDataLossStartsNewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{})
	sub := subscribe(t, n.hub, "r")
	old := n.post(t, "r", "old")
	expectSequence(t, sub, 1, 1)

	srv.Restart() // no persistence: the room is gone
	waitUntil(t, "hub ready again", func() bool { return n.hub.Ready() == nil })
	fresh := n.post(t, "r", "new")
	if fresh.ID.Epoch == old.ID.Epoch || fresh.ID.Seq != 1 {
		t.Fatalf("after data loss the id is %v, want seq 1 of a new epoch (old %v)", fresh.ID, old.ID)
	}
	if got := receive(t, sub); got.ID != fresh.ID {
		t.Fatalf("received %v, want %v", got.ID, fresh.ID)
	}
	page, err := n.store.History(t.Context(), "r", chat.Query{Direction: chat.After, Cursor: old.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Reset == nil || page.Reset.Reason != chat.ResetEpochChanged || page.Reset.FirstAvailable != fresh.ID.String() {
		t.Fatalf("reset = %+v, want epoch_changed with first %v", page.Reset, fresh.ID)
	}
}

func TestQuietRoomGapIsRepaired(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{checkInterval: 50 * time.Millisecond})
	sub := subscribe(t, n.hub, "r")
	first := n.post(t, "r", "published")
	expectSequence(t, sub, 1, 1)

	// Store a message the way the post script does, but never publish it:
	// a publish lost on the way to this process.
	admin := srv.Client()
	lost := chat.ID{Epoch: first.ID.Epoch, Seq: 2}
	data := fmt.Sprintf(`{"id":%q,"seq":2,"room":"r","user":"u","text":"lost","time":"2026-01-01T00:00:00.000Z"}`, lost)
	if err := admin.HIncrBy(t.Context(), "roomcast:{r}:meta", "seq", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.ZAdd(t.Context(), "roomcast:{r}:history", redisZ(2, data)).Err(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sub); got.ID != lost || string(got.Data) != data {
		t.Fatalf("received %v %s, want the unpublished message %v", got.ID, got.Data, lost)
	}
}

func TestDeafSubscriptionIsDetectedAndReplaced(t *testing.T) {
	srv := redistest.Start(t)
	proxy := startProxy(t, srv.Addr)
	n := startNode(t, srv, nodeConfig{checkInterval: 50 * time.Millisecond, addr: proxy.addr})
	sub := subscribe(t, n.hub, "r")

	proxy.freeze() // connections stay open but nothing reaches the hub
	waitUntil(t, "hub notices it is deaf", func() bool { return n.hub.Ready() != nil })
	direct := redisscripts.NewStore(srv.Client(), keys, redisscripts.StoreOptions{HistoryMax: 100, IdempotencyTTL: time.Hour})
	if _, err := direct.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "while deaf"}); err != nil {
		t.Fatal(err)
	}
	proxy.thaw()
	waitUntil(t, "hub ready again", func() bool { return n.hub.Ready() == nil })
	if got := receive(t, sub); got.ID.Seq != 1 {
		t.Fatalf("received seq %d, want the message posted while deaf", got.ID.Seq)
	}
}

// waitUntil polls cond until it holds, failing the test after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// proxy forwards TCP connections to a Redis server and can freeze them:
// connections stay open, but no bytes flow, like a stalled network path.
type proxy struct {
	addr   string
	mu     sync.Mutex
	frozen bool
	thawed chan struct{}
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), thawed: make(chan struct{})}
	close(p.thawed)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.thaw()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(server, client) }()
			go func() { defer wg.Done(); p.pipe(client, server) }()
		}
	}()
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		thawed := p.thawed
		p.mu.Unlock()
		<-thawed // a frozen proxy holds what it read
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen, p.thawed = true, make(chan struct{})
	}
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		p.frozen = false
		close(p.thawed)
	}
}

// gatedHistory holds the first position read of a room back until the test
// lets it go, after it has read Redis: the moment in which live messages
// queue up behind a position that is already old.
type gatedHistory struct {
	*redisscripts.Store
	read, release chan struct{}
}

func (g *gatedHistory) Positions(ctx context.Context, rooms []string) ([]chat.ID, error) {
	ids, err := g.Store.Positions(ctx, rooms)
	select {
	case g.read <- struct{}{}:
		<-g.release
	default: // only the first read is held
	}
	return ids, err
}

func TestGapBehindANewRoomsPositionIsRepaired(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 100, IdempotencyTTL: time.Hour})
	first, err := store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "one"})
	if err != nil {
		t.Fatal(err)
	}
	gate := &gatedHistory{Store: store, read: make(chan struct{}), release: make(chan struct{})}
	// No periodic check during the test: the repair must follow at once.
	hub := broker.New(rdb, broker.Options{Keys: keys, History: gate, ClientBuffer: 16,
		DeliveryCheckInterval: time.Hour, RedisTimeout: time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}

	subscribed := make(chan *broker.Subscription, 1)
	go func() {
		sub, err := hub.Subscribe(context.Background(), "r")
		if err != nil {
			t.Errorf("subscribe: %v", err)
		}
		subscribed <- sub
	}()
	<-gate.read // the position read says seq 1
	// Message 2 is stored but its publish is lost; message 3 arrives live
	// while the room's position is still being set up.
	data := fmt.Sprintf(`{"id":"%s-2","seq":2,"room":"r","user":"u","text":"lost","time":"2026-01-01T00:00:00.000Z"}`, first.ID.Epoch)
	rdb.HIncrBy(t.Context(), "roomcast:{r}:meta", "seq", 1)
	rdb.ZAdd(t.Context(), "roomcast:{r}:history", redisZ(2, data))
	if _, err := store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "three"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the hub received message 3", func() bool { return hub.Stats().Received == 1 })
	close(gate.release)

	sub := <-subscribed
	if sub == nil {
		t.FailNow()
	}
	defer sub.Close()
	if sub.Start() != first.ID {
		t.Fatalf("start = %v, want %v", sub.Start(), first.ID)
	}
	expectSequence(t, sub, 2, 3)
}

func TestSequenceGoingBackDropsSubscribersToResume(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{checkInterval: 20 * time.Millisecond})
	sub := subscribe(t, n.hub, "r")
	for range 5 {
		n.post(t, "r", "m")
	}
	expectSequence(t, sub, 1, 5)

	// A failover to a replica that missed the last three writes.
	admin := srv.Client()
	admin.HSet(t.Context(), "roomcast:{r}:meta", "seq", 2)
	admin.ZRemRangeByScore(t.Context(), "roomcast:{r}:history", "3", "+inf")
	expectClosed(t, sub, broker.ErrReset)
	again := subscribe(t, n.hub, "r")
	if got := again.Start(); got.Seq != 2 {
		t.Fatalf("a new subscription starts at %v, want seq 2", got)
	}
	n.post(t, "r", "after the failover")
	expectSequence(t, again, 3, 3)
}

func TestLiveMessageHistoryCannotConnectIsDroppedWithoutSpinning(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{checkInterval: time.Hour})
	sub := subscribe(t, n.hub, "r")
	n.post(t, "r", "one")
	expectSequence(t, sub, 1, 1)

	// A message of an epoch Redis does not have: history can never lead
	// to it.
	admin := srv.Client()
	stray := `{"id":"zzzzzz-7","seq":7,"room":"r","user":"u","text":"stray","time":"2026-01-01T00:00:00.000Z"}`
	admin.Publish(t.Context(), keys.Channel("r"), stray)
	waitUntil(t, "a repair to start", func() bool { return n.hub.Stats().Repairs == 1 })
	calls := func() int64 {
		info := admin.Info(t.Context(), "commandstats").Val()
		var c int64
		if i := strings.Index(info, "cmdstat_evalsha:calls="); i >= 0 {
			fmt.Sscanf(info[i+len("cmdstat_evalsha:calls="):], "%d", &c)
		}
		return c
	}
	first := calls()
	time.Sleep(300 * time.Millisecond) // the passing of time is the point: nothing may happen in it
	if spun := calls() - first; spun > 3 {
		t.Fatalf("%d history reads in 300ms after the repair ended: the repair spins", spun)
	}
	two := n.post(t, "r", "two")
	if got := receive(t, sub); got.ID != two.ID {
		t.Fatalf("received %v, want %v", got.ID, two.ID)
	}
}

func TestExpiredRoomIsNotRepairedOverAndOver(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{checkInterval: 20 * time.Millisecond})
	sub := subscribe(t, n.hub, "r")
	old := n.post(t, "r", "before expiry")
	expectSequence(t, sub, 1, 1)

	srv.Client().Del(t.Context(), "roomcast:{r}:meta", "roomcast:{r}:history") // ROOM_TTL ran out
	before := n.hub.Stats().Repairs
	time.Sleep(300 * time.Millisecond) // about 15 checks
	if repairs := n.hub.Stats().Repairs - before; repairs > 1 {
		t.Fatalf("%d repairs of an expired room in 300ms, want at most 1", repairs)
	}
	fresh := n.post(t, "r", "new epoch")
	if fresh.ID.Epoch == old.ID.Epoch {
		t.Fatalf("no new epoch after expiry")
	}
	if got := receive(t, sub); got.ID != fresh.ID {
		t.Fatalf("received %v, want %v", got.ID, fresh.ID)
	}
}
