package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var keys = redisscripts.NewKeys("roomcast:")

// frames is a stand-in for api/sse.Frames, as the hub's Encoder and the
// engine's Frames: the engine knows no wire format of its own.
type frames struct{}

func (frames) Message(id chat.ID, data []byte) (idLine, body []byte) {
	frame := []byte("id: " + id.String() + "\nevent: message\ndata: " + string(data) + "\n\n")
	n := bytes.IndexByte(frame, '\n') + 1
	return frame[:n:n], frame[n:]
}

func (frames) Event(name string, data []byte) []byte {
	return []byte("event: " + name + "\ndata: " + string(data) + "\n\n")
}

func (frames) Reset(string, *chat.Reset) []byte { return []byte("event: reset\ndata: {}\n\n") }
func (frames) Goodbye(reason error) []byte      { return []byte(": bye " + reason.Error() + "\n\n") }
func (frames) Ping() []byte                     { return []byte(": ping\n\n") }

// rig is a hub on a real Redis and an engine on top of it, with a
// loopback listener whose accepted connections the engine owns.
type rig struct {
	rdb    *redis.Client
	store  *redisscripts.Store
	hub    *broker.Hub
	engine *stream.Engine
	ln     net.Listener
}

func startRig(t testing.TB, heartbeat time.Duration) *rig {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
	hub := broker.New(rdb, broker.Options{Keys: keys, History: store, Encoder: frames{}, ClientBuffer: 64,
		DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := stream.New(stream.Options{
		Rooms: hub, Frames: frames{}, HeartbeatInterval: heartbeat, StreamWriteTimeout: 5 * time.Second, ClientBuffer: 64,
	})
	return &rig{rdb: rdb, store: store, hub: hub, engine: e, ln: ln}
}

// open opens a stream of room through the engine and returns the client's
// end of its connection.
func (r *rig) open(t testing.TB, room string, resume *chat.ID) net.Conn {
	t.Helper()
	client, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := r.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.engine.Open(t.Context(), stream.Spec{Rooms: []stream.Room{{Name: room, Resume: resume}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Attach(server, []byte("retry: 1000\n\n"))
	return client
}

// lines reads the stream's lines until the one that starts with prefix
// and returns everything read, failing after a timeout.
func readUntil(t testing.TB, rd *bufio.Reader, conn net.Conn, prefix string) []string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v after %q", err, got)
		}
		line = strings.TrimSuffix(line, "\n")
		got = append(got, line)
		if strings.HasPrefix(line, prefix) {
			return got
		}
	}
}

func TestEphemeralEventsReachStreamsWithoutID(t *testing.T) {
	r := startRig(t, time.Minute)
	conn := r.open(t, "lobby", nil)
	rd := bufio.NewReader(conn)
	readUntil(t, rd, conn, "retry:")
	if err := r.rdb.Publish(t.Context(), keys.Channel("lobby"), "!typing\n{\"user\":\"ann\"}").Err(); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, rd, conn, "data:")
	if want := []string{"", "event: typing", `data: {"user":"ann"}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stream got %q, want %q", got, want)
	}
	// Stored messages still follow in sequence, unaffected by the event.
	p, err := r.store.Post(t.Context(), chat.Post{Room: "lobby", User: "u", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	got = readUntil(t, rd, conn, "id:")
	if last := got[len(got)-1]; last != "id: "+p.ID.String() {
		t.Fatalf("stream got %q, want the id of the post", got)
	}
}

func TestResumeIsServedFromTheRingWithoutRedis(t *testing.T) {
	r := startRig(t, time.Minute)
	live := r.open(t, "r", nil)
	liveRd := bufio.NewReader(live)
	readUntil(t, liveRd, live, "retry:")
	var posted []chat.Posted
	for i := range 5 {
		p, err := r.store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		posted = append(posted, p)
		readUntil(t, liveRd, live, "id: "+p.ID.String())
	}
	before := r.hub.Stats()
	conn := r.open(t, "r", &posted[1].ID)
	rd := bufio.NewReader(conn)
	for _, p := range posted[2:] {
		readUntil(t, rd, conn, "id: "+p.ID.String())
	}
	after := r.hub.Stats()
	if after.HistoryHits != before.HistoryHits || after.RingHits != before.RingHits+1 {
		t.Fatalf("resume read history %d times and the ring %d times, want 0 and 1",
			after.HistoryHits-before.HistoryHits, after.RingHits-before.RingHits)
	}
}

func TestHubStopClosesOwnedStreamsWithGoodbye(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 10, IdempotencyTTL: time.Hour})
	hub := broker.New(rdb, broker.Options{Keys: keys, History: store, Encoder: frames{}, ClientBuffer: 8,
		DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := stream.New(stream.Options{Rooms: hub, Frames: frames{}, HeartbeatInterval: time.Minute,
		StreamWriteTimeout: time.Second})
	r := &rig{hub: hub, engine: e, ln: ln}
	conn := r.open(t, "r", nil)
	rd := bufio.NewReader(conn)
	readUntil(t, rd, conn, "retry:")
	cancel()
	<-done
	got := readUntil(t, rd, conn, ": bye")
	if last := got[len(got)-1]; last != ": bye "+broker.ErrClosed.Error() {
		t.Fatalf("last line %q, want the goodbye for a closed broker", last)
	}
	if rest, err := io.ReadAll(rd); err != nil || string(rest) != "\n" {
		t.Fatalf("after the goodbye: %q, %v; want the end of the event and of the connection", rest, err)
	}
}

// TestIdleStreamMemory holds the memory of 1 000 idle streams over real
// loopback connections, heap and goroutine stacks both ends of the
// connections included, under 16 KiB per stream.
func TestIdleStreamMemory(t *testing.T) {
	const streams, rooms = 1000, 100
	r := startRig(t, time.Minute)
	for i := range rooms { // rooms exist before: their state is not per stream
		r.open(t, fmt.Sprint("room", i), nil)
	}
	before := memoryInUse()
	for i := range streams {
		r.open(t, fmt.Sprint("room", i%rooms), nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.hub.Stats().Subscribers < streams+rooms {
		if time.Now().After(deadline) {
			t.Fatalf("only %d listeners", r.hub.Stats().Subscribers)
		}
		runtime.Gosched()
	}
	perStream := (memoryInUse() - before) / streams
	t.Logf("heap+stacks per idle stream: %d bytes", perStream)
	if perStream > 16<<10 {
		t.Fatalf("an idle stream holds %d bytes, want at most 16 KiB", perStream)
	}
}

func memoryInUse() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() + s[1].Value.Uint64())
}
