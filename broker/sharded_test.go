package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// shardedNode is one roomcast process's hub and store in sharded mode.
type shardedNode struct {
	rdb   redis.UniversalClient
	store *redisscripts.Store
	hub   *broker.Hub
}

// startSharded starts a sharded-mode hub on a standalone Redis (one
// address) or a Redis Cluster (several).
func startSharded(t testing.TB, addrs ...string) *shardedNode {
	t.Helper()
	return startShardedBuffer(t, 100000, addrs...)
}

// startShardedBuffer is startSharded with each subscriber's queue length.
func startShardedBuffer(t testing.TB, buffer int, addrs ...string) *shardedNode {
	t.Helper()
	const timeout = 500 * time.Millisecond
	var rdb redis.UniversalClient
	if len(addrs) == 1 {
		rdb = redis.NewClient(&redis.Options{Addr: addrs[0], MaxRetries: -1,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout})
	} else {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout})
	}
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{
		HistoryMax: 10000, IdempotencyTTL: time.Hour, Sharded: true})
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, ClientBuffer: buffer, DeliveryCheckInterval: 200 * time.Millisecond,
		RedisTimeout: timeout, Shards: broker.NewShardRouter(rdb), Linger: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; rdb.Close() })
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &shardedNode{rdb: rdb, store: store, hub: hub}
}

// postUntil posts to room until stop is closed, retrying each post with its
// idempotency key until Redis acknowledges it (a slot moving or a failover
// refuses some posts for a moment). It returns the number acknowledged.
func (n *shardedNode) postUntil(t *testing.T, room string, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var acked int64
		defer func() { out <- acked }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := n.store.Post(ctx, chat.Post{Room: room, User: "u", Text: "m",
					IdempotencyKey: fmt.Sprint("k", i)})
				cancel()
				if err == nil {
					acked++
					break
				}
				select {
				case <-stop:
					return // not acknowledged: not counted
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}()
	return out
}

// shardNumSub sums PUBSUB SHARDNUMSUB of channel over every node.
func shardNumSub(t testing.TB, addrs []string, channel string) int64 {
	t.Helper()
	var total int64
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		res, err := c.Do(t.Context(), "PUBSUB", "SHARDNUMSUB", channel).Slice()
		c.Close()
		if err != nil || len(res) != 2 {
			t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v %v", a, res, err)
		}
		total += res[1].(int64)
	}
	return total
}

func TestShardedModeOnStandaloneRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := startSharded(t, srv.Addr), startSharded(t, srv.Addr)
	sub := subscribe(t, b.hub, "lobby")
	for i := range 3 {
		if _, err := a.store.Post(t.Context(), chat.Post{Room: "lobby", User: "u", Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	expectSequence(t, sub, 1, 3)
	if got := shardNumSub(t, []string{srv.Addr}, keys.ShardChannel("lobby")); got != 1 {
		t.Fatalf("SHARDNUMSUB = %d, want 1 (only b listens)", got)
	}

	t.Run("ConnectionKilled", func(t *testing.T) {
		stop := make(chan struct{})
		posted := a.postUntil(t, "lobby", stop)
		expectSequence(t, sub, 4, 50)
		if err := srv.Client().Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		expectSequence(t, sub, 51, 150)
		close(stop)
		expectSequence(t, sub, 151, 3+<-posted)
	})

	t.Run("UnsubscribedAfterLinger", func(t *testing.T) {
		sub.Close()
		waitUntil(t, "no shard subscriber of the room", func() bool {
			return shardNumSub(t, []string{srv.Addr}, keys.ShardChannel("lobby")) == 0
		})
	})
}

func TestShardedDeafShardIsDetectedAndReplaced(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	proxy := startProxy(t, srv.Addr)
	n := startSharded(t, proxy.addr)
	sub := subscribe(t, n.hub, "r")

	proxy.freeze() // connections stay open but nothing reaches the hub
	waitUntil(t, "hub notices its shard is deaf", func() bool { return n.hub.Ready() != nil })
	if err := n.hub.Ready(); !strings.Contains(err.Error(), proxy.addr) {
		t.Fatalf("Ready = %v, want the shard named", err)
	}
	direct := redisscripts.NewStore(srv.Client(), keys, redisscripts.StoreOptions{
		HistoryMax: 100, IdempotencyTTL: time.Hour, Sharded: true})
	if _, err := direct.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "while deaf"}); err != nil {
		t.Fatal(err)
	}
	proxy.thaw()
	waitUntil(t, "hub ready again", func() bool { return n.hub.Ready() == nil })
	if got := receive(t, sub); got.ID.Seq != 1 {
		t.Fatalf("received seq %d, want the message posted while deaf", got.ID.Seq)
	}
}

func TestPublishRoomFollowsTheMode(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	n := startSharded(t, srv.Addr)
	ps := n.rdb.(*redis.Client).SSubscribe(t.Context(), keys.ShardChannel("r"))
	defer ps.Close()
	if _, err := ps.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := n.store.PublishRoom(t.Context(), "r", "!typing")
	if err != nil || got != 1 {
		t.Fatalf("PublishRoom = %d, %v; want 1 receiver", got, err)
	}
	m, err := ps.ReceiveMessage(t.Context())
	if err != nil || m.Payload != "!typing" {
		t.Fatalf("received %v, %v", m, err)
	}
	pattern := redisscripts.NewStore(n.rdb, keys, redisscripts.StoreOptions{HistoryMax: 10})
	if got, err := pattern.PublishRoom(t.Context(), "r", "!typing"); err != nil || got != 0 {
		t.Fatalf("pattern-mode PublishRoom reached %d shard subscribers, %v; want 0", got, err)
	}
}

// TestShardedModeOnCluster shares one three-master cluster between
// scenarios that leave it whole.
func TestShardedModeOnCluster(t *testing.T) {
	t.Parallel()
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	a, b, c := startSharded(t, addrs...), startSharded(t, addrs...), startSharded(t, addrs...)

	t.Run("CrossHubDelivery", func(t *testing.T) {
		rooms := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
		subs := make(map[string][]*broker.Subscription)
		for _, room := range rooms {
			subs[room] = []*broker.Subscription{subscribe(t, b.hub, room), subscribe(t, c.hub, room)}
		}
		for i := range 5 {
			for _, room := range rooms {
				if _, err := a.store.Post(t.Context(), chat.Post{Room: room, User: "u", Text: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, room := range rooms {
			for _, sub := range subs[room] {
				expectSequence(t, sub, 1, 5)
				sub.Close()
			}
		}
		if got := a.hub.Stats().Received; got != 0 {
			t.Fatalf("hub without local subscribers received %d messages, want 0", got)
		}
	})

	t.Run("Churn", func(t *testing.T) {
		var opened atomic.Int64
		done := make(chan error, 4)
		for w := range 4 {
			go func() {
				for i := range 100 {
					room := fmt.Sprintf("churn-%d", (w*100+i)%40)
					sub, err := b.hub.Subscribe(t.Context(), room)
					if err != nil {
						done <- err
						return
					}
					opened.Add(1)
					sub.Close()
				}
				done <- nil
			}()
		}
		for range 4 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		waitUntil(t, "every churned room unsubscribed", func() bool {
			for i := range 40 {
				if shardNumSub(t, addrs, keys.ShardChannel(fmt.Sprintf("churn-%d", i))) != 0 {
					return false
				}
			}
			return true
		})
		if err := b.hub.Ready(); err != nil {
			t.Fatalf("Ready after churn: %v", err)
		}
	})

	t.Run("SlotMigrationOfABusyRoom", func(t *testing.T) {
		const room = "busy"
		subB, subC := subscribe(t, b.hub, room), subscribe(t, c.hub, room)
		stop := make(chan struct{})
		posted := a.postUntil(t, room, stop)
		expectSequence(t, subB, 1, 30)
		dst := migrateSlot(t, nodes, keys.ShardChannel(room))
		// Both hubs follow the slot (not merely repair from history).
		waitUntil(t, "both hubs subscribed on the new owner", func() bool {
			return shardNumSub(t, []string{dst.Addr}, keys.ShardChannel(room)) == 2
		})
		expectSequence(t, subB, 31, 100)
		close(stop)
		n := <-posted
		expectSequence(t, subB, 101, n)
		expectSequence(t, subC, 1, n)
		for _, sub := range []*broker.Subscription{subB, subC} {
			select {
			case m := <-sub.C():
				t.Fatalf("extra message after the last acknowledged one: %v", m)
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
}

// migrateSlot moves the slot of key to another master while the cluster
// serves: SETSLOT IMPORTING/MIGRATING, MIGRATE of its keys, SETSLOT NODE.
// It returns the new owner.
func migrateSlot(t *testing.T, nodes []*redistest.Server, key string) *redistest.Server {
	t.Helper()
	ctx := t.Context()
	cl := nodes[0].Client()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	var src, dst *redistest.Server
	for i, n := range nodes {
		if ownsSlot(t, n, slot) {
			src, dst = n, nodes[(i+1)%len(nodes)]
		}
	}
	if src == nil {
		t.Fatalf("no owner of slot %d", slot)
	}
	srcID, _ := src.ID(ctx)
	dstID, _ := dst.ID(ctx)
	s, d := src.Client(), dst.Client()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(s.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	host, port, _ := strings.Cut(dst.Addr, ":")
	for {
		ks, err := s.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must(err)
		if len(ks) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range ks {
			args = append(args, k)
		}
		must(s.Do(ctx, args...).Err())
	}
	for _, n := range []*redistest.Server{dst, src} {
		must(n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	}
	for _, n := range nodes {
		if n != src && n != dst {
			must(n.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
		}
	}
	return dst
}

func ownsSlot(t *testing.T, n *redistest.Server, slot int64) bool {
	t.Helper()
	shards, err := n.Client().ClusterShards(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, shard := range shards {
		for _, r := range shard.Slots {
			if r.Start <= slot && slot <= r.End {
				return slices.ContainsFunc(shard.Nodes, func(node redis.Node) bool {
					return node.Role == "master" && net.JoinHostPort(node.IP, strconv.FormatInt(node.Port, 10)) == n.Addr
				})
			}
		}
	}
	return false
}

// TestShardedModeFailover fails a busy room's master over twice on a
// cluster of three masters with a replica each: a manual CLUSTER FAILOVER
// (nothing may be lost), then a kill -9 of the new master (acknowledged
// messages that the replica never got may be lost, and then only those).
func TestShardedModeFailover(t *testing.T) {
	t.Parallel()
	// Registered first, so it runs after every client is closed: go-redis
	// retries dialing the killed node in the background once a second and
	// notices the closed pool only then; wait for that before goleak looks.
	t.Cleanup(func() {
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			buf := make([]byte, 1<<20)
			if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*ConnPool).tryDial") {
				return
			}
		}
	})
	nodes := redistest.StartClusterWithReplicas(t, 3, 1)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	a, b := startSharded(t, addrs...), startSharded(t, addrs...)
	const room = "failover"
	channel := keys.ShardChannel(room)
	sub := subscribe(t, b.hub, room)
	stop := make(chan struct{})
	posted := a.postUntil(t, room, stop)
	expectSequence(t, sub, 1, 20)

	master := slotOwner(t, nodes, channel)
	replica := replicaOf(t, nodes, master)
	// A manual failover gives up after 5s if the replica cannot catch up (a
	// loaded machine): ask again until it happens.
	for attempt := 0; slotOwner(t, nodes, channel) != replica; attempt++ {
		if attempt == 5 {
			t.Fatal("CLUSTER FAILOVER did not happen in 5 attempts")
		}
		if err := replica.Client().Do(t.Context(), "CLUSTER", "FAILOVER").Err(); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(7 * time.Second); time.Now().Before(end) && slotOwner(t, nodes, channel) != replica; {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil(t, "the hub subscribed on the new master", func() bool {
		return shardNumSub(t, []string{replica.Addr}, channel) == 1
	})
	expectSequence(t, sub, 21, 60)

	// kill -9 the new master while posts go on; its replica (the old master)
	// takes over once the cluster notices.
	replica.Kill()
	waitUntil(t, "the hub reports its shard down", func() bool { return b.hub.Ready() != nil })
	waitUntil(t, "the old master serves the slot again", func() bool { return slotOwner(t, nodes, channel) == master })
	waitUntil(t, "the hub ready again", func() bool { return b.hub.Ready() == nil })
	close(stop)
	acked := <-posted
	pos, err := a.store.Positions(t.Context(), []string{room})
	if err != nil {
		t.Fatal(err)
	}
	kept := pos[0].Seq // what Redis has after the failover
	var got int64 = 60
	for got < acked {
		select {
		case m, ok := <-sub.C():
			if !ok {
				if !errors.Is(sub.Err(), broker.ErrReset) || kept >= acked {
					t.Fatalf("subscription ended at %d of %d acknowledged (Redis kept %d): %v", got, acked, kept, sub.Err())
				}
				t.Logf("reset at %d: Redis lost acknowledged messages %d..%d in the failover", got, kept+1, acked)
				return
			}
			if m.ID.Seq != got+1 {
				t.Fatalf("received seq %d after %d", m.ID.Seq, got)
			}
			got++
		case <-time.After(10 * time.Second):
			if kept < acked && got == kept {
				t.Logf("Redis lost acknowledged messages %d..%d before any reached the hub", kept+1, acked)
				return
			}
			t.Fatalf("delivered %d of %d acknowledged, Redis kept %d", got, acked, kept)
		}
	}
	// Delivery goes on after the failover.
	p, err := a.store.Post(t.Context(), chat.Post{Room: room, User: "u", Text: "after"})
	if err != nil {
		t.Fatal(err)
	}
	expectSequence(t, sub, acked+1, p.ID.Seq)
}

// slotOwner is the master that serves key's slot, as the cluster's live
// nodes see it.
func slotOwner(t *testing.T, nodes []*redistest.Server, key string) *redistest.Server {
	t.Helper()
	for _, n := range nodes {
		if n.Running() && ownsSlot(t, n, slotOfKey(t, n, key)) {
			return n
		}
	}
	return nil
}

func slotOfKey(t *testing.T, n *redistest.Server, key string) int64 {
	t.Helper()
	slot, err := n.Client().ClusterKeySlot(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return slot
}

// replicaOf is the node replicating master.
func replicaOf(t *testing.T, nodes []*redistest.Server, master *redistest.Server) *redistest.Server {
	t.Helper()
	id, err := master.ID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		info, _ := n.Client().Do(t.Context(), "CLUSTER", "REPLICAS", id).StringSlice()
		for _, line := range info {
			for _, m := range nodes {
				if strings.Contains(line, " "+m.Addr+"@") {
					return m
				}
			}
		}
	}
	t.Fatalf("no replica of %s", master.Addr)
	return nil
}
