package api

// What a client following 50 rooms costs per delivered message: one
// 50-room stream (composite-cursor id line + the shared body) against 50
// single-room streams (the shared id line and body as is), both on the
// stream engine over real loopback connections, from the hub's receive to
// the bytes read by the client.
//
//	go test -run '^$' -bench MultiRoomFanOut -benchmem ./api/

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roomcast/api/cursor"
	"roomcast/api/sse"
	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
	"roomcast/redisscripts"
)

// newRooms is a broker History in which every room is new and empty.
type newRooms struct{}

func (newRooms) Positions(_ context.Context, rooms []string) ([]chat.ID, error) {
	return make([]chat.ID, len(rooms)), nil
}

func (newRooms) History(context.Context, string, chat.Query) (chat.Page, error) {
	return chat.Page{}, nil
}

func BenchmarkMultiRoomFanOut(b *testing.B) {
	const rooms = 50
	b.Run(fmt.Sprintf("one-stream-of-%d-rooms", rooms), func(b *testing.B) { benchMultiRoomFanOut(b, rooms, true) })
	b.Run(fmt.Sprintf("%d-single-room-streams", rooms), func(b *testing.B) { benchMultiRoomFanOut(b, rooms, false) })
}

// frameCounter counts the complete SSE frames ("\n\n"-terminated) that the
// clients have read.
type frameCounter struct {
	mu     sync.Mutex
	cond   *sync.Cond
	frames int64
	bytes  int64
}

func (f *frameCounter) read(conn net.Conn) {
	buf := make([]byte, 64<<10)
	var last byte
	for {
		n, err := conn.Read(buf)
		var frames int64
		for _, c := range buf[:n] {
			if c == '\n' && last == '\n' {
				frames++
			}
			last = c
		}
		f.mu.Lock()
		f.frames += frames
		f.bytes += int64(n)
		f.mu.Unlock()
		f.cond.Broadcast()
		if err != nil {
			return
		}
	}
}

func (f *frameCounter) await(frames int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.frames < frames {
		f.cond.Wait()
	}
}

func benchMultiRoomFanOut(b *testing.B, rooms int, multi bool) {
	keys := redisscripts.NewKeys("bench:")
	hub := broker.New(nil, broker.Options{Keys: keys, History: newRooms{}, Encoder: sse.Frames{}, ClientBuffer: 1024,
		DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
	e := stream.New(stream.Options{Rooms: hub, Frames: sse.Frames{}, HeartbeatInterval: time.Minute,
		StreamWriteTimeout: 10 * time.Second, ClientBuffer: 1024})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprintf("room-%03d", i)
	}
	specs := make([]stream.Spec, 0, rooms)
	if multi {
		spec := stream.Spec{Cursor: sse.NewCursor(cursor.Codec{}, names)}
		for _, name := range names {
			spec.Rooms = append(spec.Rooms, stream.Room{Name: name})
		}
		specs = append(specs, spec)
	} else {
		for _, name := range names {
			specs = append(specs, stream.Spec{Rooms: []stream.Room{{Name: name}}})
		}
	}
	counter := &frameCounter{}
	counter.cond = sync.NewCond(&counter.mu)
	var readers sync.WaitGroup
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
		readers.Wait()
	}()
	for _, spec := range specs {
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
			counter.read(client)
		}()
		s, err := e.Open(b.Context(), spec)
		if err != nil {
			b.Fatal(err)
		}
		s.Attach(server, []byte("retry: 1000\n\n"))
	}
	want := int64(len(specs)) // the preambles
	counter.await(want)

	text := strings.Repeat("abcdefghij", 20)
	seqs := make([]int64, rooms)
	var cpuBefore, cpuAfter syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpuBefore)
	bytesBefore := counter.bytes
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := i % rooms
		seqs[r]++
		seq := strconv.FormatInt(seqs[r], 10)
		p := `{"id":"mbench-` + seq + `","seq":` + seq + `,"room":"` + names[r] + `","user":"bench","text":"` +
			text + `","time":"2026-01-01T00:00:00.000Z"}`
		hub.Receive(b.Context(), keys.Channel(names[r]), p)
		want++
		counter.await(want)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpuAfter)
	cpu := time.Duration(cpuAfter.Utime.Nano() + cpuAfter.Stime.Nano() - cpuBefore.Utime.Nano() - cpuBefore.Stime.Nano())
	// CPU of the whole process (the client's reads included, alike in both).
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/delivery")
	counter.mu.Lock()
	b.ReportMetric(float64(counter.bytes-bytesBefore)/float64(b.N), "wire-B/delivery")
	counter.mu.Unlock()
}
