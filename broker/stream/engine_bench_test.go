package stream_test

// Fan-out into real loopback connections: what one message costs per
// stream, from the hub's receive to the bytes on the client's socket, and
// how many write system calls that takes. Two designs, measured in one
// run:
//
//   - design=engine: the stream engine as built (one parked goroutine per
//     stream, woken to writev its whole queue, coarse write deadlines);
//   - design=handler: what api/stream.go did before the engine, rebuilt
//     here as the baseline: a goroutine per stream draining a
//     broker.Subscription, a 4 KiB bufio.Writer as net/http keeps, a write
//     deadline and a flush per batch.
//
//	go test -run '^$' -bench StreamFanOut -benchmem ./broker/stream/

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
	"roomcast/redisscripts"
)

// emptyRooms is a History in which every room is new and empty.
type emptyRooms struct{}

func (emptyRooms) Positions(_ context.Context, rooms []string) ([]chat.ID, error) {
	return make([]chat.ID, len(rooms)), nil
}

func (emptyRooms) History(context.Context, string, chat.Query) (chat.Page, error) {
	return chat.Page{}, nil
}

func BenchmarkStreamFanOut(b *testing.B) {
	for _, design := range []string{"engine", "handler"} {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("design=%s/streams=%d", design, n), func(b *testing.B) {
				benchStreamFanOut(b, n, design == "engine")
			})
		}
	}
}

// received counts the bytes all clients have read, so that the benchmark
// can wait until every stream has the message it just published.
type received struct {
	mu     sync.Mutex
	cond   *sync.Cond
	bytes  int64
	failed error
}

func (r *received) add(n int, err error) {
	r.mu.Lock()
	r.bytes += int64(n)
	if err != nil && r.failed == nil {
		r.failed = err
	}
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *received) await(b *testing.B, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.bytes < total && r.failed == nil {
		r.cond.Wait()
	}
	if r.failed != nil {
		b.Fatalf("client read: %v", r.failed)
	}
}

func benchStreamFanOut(b *testing.B, streams int, engine bool) {
	keys := redisscripts.NewKeys("bench:")
	hub := broker.New(nil, broker.Options{Keys: keys, History: emptyRooms{}, Encoder: frames{}, ClientBuffer: 1024,
		DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	e := stream.New(stream.Options{Rooms: hub, Frames: frames{}, HeartbeatInterval: time.Minute,
		StreamWriteTimeout: 10 * time.Second, ClientBuffer: 1024})

	rec := &received{}
	rec.cond = sync.NewCond(&rec.mu)
	var clients []net.Conn
	var subs []*broker.Subscription
	var readers, handlers sync.WaitGroup
	defer func() {
		for _, c := range clients {
			c.Close()
		}
		for _, s := range subs {
			s.Close()
		}
		readers.Wait()
		handlers.Wait()
	}()
	const preamble = "retry: 1000\n\n"
	for range streams {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, client)
		server, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if err != nil {
					rec.add(n, nil) // closed at the end
					return
				}
				rec.add(n, nil)
			}
		}()
		if engine {
			s, err := e.Open(b.Context(), stream.Spec{Rooms: []stream.Room{{Name: "room"}}})
			if err != nil {
				b.Fatal(err)
			}
			s.Attach(server, []byte(preamble))
			continue
		}
		sub, err := hub.Subscribe(b.Context(), "room")
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, sub)
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer server.Close()
			handlerLoop(server, sub, preamble)
		}()
	}
	total := int64(streams * len(preamble))
	rec.await(b, total)

	const batch = 4096
	var payloads []string
	seq := int64(1)
	before, cpuBefore := writeSyscalls(b), cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(payloads) == 0 {
			b.StopTimer()
			payloads = makePayloads(seq, batch)
			seq += int64(len(payloads))
			b.StartTimer()
		}
		p := payloads[0]
		payloads = payloads[1:]
		hub.Receive(b.Context(), keys.Channel("room"), p)
		total += int64(streams) * frameLen(p)
		rec.await(b, total)
	}
	b.StopTimer()
	after, cpuAfter := writeSyscalls(b), cpuTime()
	deliveries := float64(b.N) * float64(streams)
	// CPU time of the whole process (clients' reads included, the same in
	// both designs): on a shared machine it varies less than wall time.
	b.ReportMetric(float64((cpuAfter-cpuBefore).Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after-before)/deliveries, "writes/delivery")
}

// handlerLoop is the stream loop of api/stream.go before the engine.
func handlerLoop(conn net.Conn, sub *broker.Subscription, preamble string) {
	w := bufio.NewWriterSize(conn, 4096)
	_, _ = w.WriteString(preamble)
	_ = w.Flush()
	for m := range sub.C() {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = w.Write(m.IDLine)
		_, _ = w.Write(m.Body)
	batch:
		for range 63 {
			select {
			case next, ok := <-sub.C():
				if !ok {
					break batch
				}
				_, _ = w.Write(next.IDLine)
				_, _ = w.Write(next.Body)
			default:
				break batch
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

func frameLen(payload string) int64 {
	id, _ := chat.IDOf([]byte(payload))
	idLine, body := frames{}.Message(id, []byte(payload))
	return int64(len(idLine) + len(body))
}

// makePayloads makes the Pub/Sub payloads seq first..first+n-1, as the
// post script publishes them, with a 200-byte text.
func makePayloads(first int64, n int) []string {
	text := strings.Repeat("abcdefghij", 20)
	out := make([]string, n)
	for i := range out {
		seq := strconv.FormatInt(first+int64(i), 10)
		out[i] = `{"id":"mbench-` + seq + `","seq":` + seq + `,"room":"room","user":"bench","text":"` + text +
			`","time":"2026-01-01T00:00:00.000Z"}`
	}
	return out
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeSyscalls is the number of write system calls (write, writev, …)
// this process has made, from /proc/self/io.
func writeSyscalls(b *testing.B) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io to count system calls")
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no syscw in /proc/self/io")
	return 0
}
