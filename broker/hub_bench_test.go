package broker

// Fan-out benchmarks. They run inside the package so that they can feed the
// hub's receive path (channel → room, id parsing, encoding, dispatch) with
// prepared Pub/Sub messages: a Redis round trip per message would hide the
// cost of delivering to each extra subscriber. BenchmarkFanOutThroughRedis
// measures the whole path, post included, for comparison.
//
//	go test -run '^$' -bench 'FanOut' -benchmem ./broker/

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

var fanOutSizes = []int{1, 100, 10_000}

// benchEncode frames a message as api/sse does, with the same appends, so
// that the benchmarks cost what they did; api/sse cannot be imported here,
// as it imports this package (its goodbyes name the hub's errors).
func benchEncode(m *Message) []byte {
	return appendEvent(nil, m.ID.String(), "message", m.Data)
}

// benchEncoder is the hub's Encoder made of benchEncode: one buffer per
// message, cut after its id line.
type benchEncoder struct{}

func (benchEncoder) Message(id chat.ID, data []byte) (idLine, body []byte) {
	frame := benchEncode(&Message{ID: id, Data: data})
	n := bytes.IndexByte(frame, '\n') + 1
	return frame[:n:n], frame[n:]
}

func (benchEncoder) Event(name string, data []byte) []byte {
	return appendEvent(nil, "", name, data)
}

// appendEvent is a copy of sse.AppendEvent.
func appendEvent(dst []byte, id, event string, data []byte) []byte {
	if id != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, fieldCleaner.Replace(id)...)
		dst = append(dst, '\n')
	}
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, fieldCleaner.Replace(event)...)
		dst = append(dst, '\n')
	}
	for {
		i := bytes.IndexAny(data, "\r\n")
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n')
}

var fieldCleaner = strings.NewReplacer("\r", "", "\n", "", "\x00", "")

// emptyRooms is a History in which every room is new and empty.
type emptyRooms struct{}

func (emptyRooms) Positions(_ context.Context, rooms []string) ([]chat.ID, error) {
	return make([]chat.ID, len(rooms)), nil
}

func (emptyRooms) History(context.Context, string, chat.Query) (chat.Page, error) {
	return chat.Page{}, nil
}

// payloads makes the Pub/Sub messages seq first..first+n-1 of a room, as
// the post script publishes them, with a 200-byte text.
func payloads(keys redisscripts.Keys, room string, first int64, n int) []*redis.Message {
	text := make([]byte, 200)
	for i := range text {
		text[i] = 'a' + byte(i%26)
	}
	out := make([]*redis.Message, n)
	for i := range out {
		seq := first + int64(i)
		out[i] = &redis.Message{
			Channel: keys.Channel(room),
			Payload: `{"id":"mbench-` + strconv.FormatInt(seq, 10) + `","seq":` + strconv.FormatInt(seq, 10) +
				`,"room":"` + room + `","user":"bench","text":"` + string(text) + `","time":"2026-01-01T00:00:00.000Z"}`,
		}
	}
	return out
}

// BenchmarkFanOut delivers one message to every local subscriber of a room
// and waits until each subscriber has taken it (and, for per-subscriber,
// encoded it itself). One op is one message; ns/delivery divides by the
// number of subscribers.
//
// encode=once is the hub as built: its Encoder runs once per message and every
// subscriber shares the frame. encode=per-subscriber is a variant that exists
// only here: the hub has no Encoder and each subscriber encodes the message
// when it receives it, as a design that serialises per connection would.
func BenchmarkFanOut(b *testing.B) {
	for _, mode := range []string{"once", "per-subscriber"} {
		for _, n := range fanOutSizes {
			b.Run(fmt.Sprintf("encode=%s/subscribers=%d", mode, n), func(b *testing.B) {
				benchFanOut(b, n, mode == "once")
			})
		}
	}
}

func benchFanOut(b *testing.B, subscribers int, encodeOnce bool) {
	keys := redisscripts.NewKeys("bench:")
	opts := Options{Keys: keys, History: emptyRooms{}, ClientBuffer: 4, DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second}
	if encodeOnce {
		opts.Encoder = benchEncoder{}
	}
	h := New(nil, opts)
	subs := make([]*Subscription, subscribers)
	for i := range subs {
		s, err := h.Subscribe(b.Context(), "room")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
	}

	// Messages are made in batches with the timer stopped: each must follow
	// the one before, so none can be reused.
	const batch = 4096
	var (
		next   []*redis.Message
		seq    int64 = 1
		frames int   // bytes of frames seen, so that no work is optimised away
	)
	b.ReportAllocs()
	for b.Loop() {
		if len(next) == 0 {
			b.StopTimer()
			next = payloads(keys, "room", seq, batch)
			seq += batch
			b.StartTimer()
		}
		h.Receive(b.Context(), next[0].Channel, next[0].Payload)
		next = next[1:]
		for _, s := range subs {
			m, ok := <-s.ch
			if !ok {
				b.Fatalf("subscription dropped: %v", s.Err())
			}
			if encodeOnce {
				frames += len(m.IDLine) + len(m.Body)
			} else {
				frames += len(benchEncode(m))
			}
		}
	}
	if frames == 0 {
		b.Fatal("no frame delivered")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/delivery")
	if got := h.Stats().Delivered; got != uint64(b.N)*uint64(subscribers) {
		b.Fatalf("delivered %d, want %d", got, uint64(b.N)*uint64(subscribers))
	}
}

// BenchmarkFanOutThroughRedis posts a message with the Lua script to a real
// redis-server and waits until every local subscriber of the hub has it: the
// end-to-end cost of one message, of which the Redis round trips are most.
func BenchmarkFanOutThroughRedis(b *testing.B) {
	for _, n := range fanOutSizes {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchFanOutThroughRedis(b, n)
		})
	}
}

func benchFanOutThroughRedis(b *testing.B, subscribers int) {
	srv := redistest.Start(b)
	rdb := srv.Client()
	keys := redisscripts.NewKeys("bench:")
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
	h := New(rdb, Options{Keys: keys, History: store, Encoder: benchEncoder{}, ClientBuffer: 16,
		DeliveryCheckInterval: time.Minute, RedisTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	if err := h.WaitStarted(b.Context()); err != nil {
		b.Fatal(err)
	}
	subs := make([]*Subscription, subscribers)
	for i := range subs {
		s, err := h.Subscribe(b.Context(), "room")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
	}
	post := chat.Post{Room: "room", User: "bench", Text: strings.Repeat("x", 200)}

	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Post(b.Context(), post); err != nil {
			b.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
		for _, s := range subs {
			select {
			case _, ok := <-s.ch:
				if !ok {
					b.Fatalf("subscription dropped: %v", s.Err())
				}
			case <-timeout:
				b.Fatal("message not delivered within 10s")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subscribers), "ns/delivery")
}

// countListener takes every message and counts it.
type countListener struct{ n atomic.Int64 }

func (c *countListener) Deliver(*Message) bool { c.n.Add(1); return true }
func (c *countListener) Dropped(error)         {}

// roomPayload is the Pub/Sub message seq of room, as the post script
// publishes it.
func roomPayload(keys redisscripts.Keys, room string, seq int64) (channel, payload string) {
	s := strconv.FormatInt(seq, 10)
	return keys.Channel(room), `{"id":"mbench-` + s + `","seq":` + s + `,"room":"` + room +
		`","user":"bench","text":"hello","time":"2026-01-01T00:00:00.000Z"}`
}

// BenchmarkFanOutBesideBigRoom measures a small room while another
// goroutine fans messages out to a room of 10 000 listeners, as two
// subscriptions (shards) of one hub do: op=deliver is one message to a room
// of one listener, op=listen is one Listen+Unlisten of a stream joining a
// small room. Each parallel goroutine has its own small room. With one
// hub-wide lock both wait for the big room's fan-out; with per-room state
// they do not. big-msgs/s is the big room's rate meanwhile.
//
//	go test -run '^$' -bench FanOutBesideBigRoom -cpu 2 ./broker/
func BenchmarkFanOutBesideBigRoom(b *testing.B) {
	for _, op := range []string{"deliver", "listen"} {
		b.Run("op="+op, func(b *testing.B) { benchBesideBigRoom(b, op == "listen") })
	}
}

func benchBesideBigRoom(b *testing.B, listen bool) {
	keys := redisscripts.NewKeys("bench:")
	h := New(nil, Options{Keys: keys, History: emptyRooms{}, Encoder: benchEncoder{}, ClientBuffer: 4,
		DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
	ctx := b.Context()
	const big = 10_000
	for range big {
		if _, err := h.Listen(ctx, "big", &countListener{}); err != nil {
			b.Fatal(err)
		}
	}
	var (
		smallRooms atomic.Int64
		latMu      sync.Mutex
		lat        []time.Duration // of every op, for percentiles
	)
	stop := make(chan struct{})
	bigDone := make(chan int64)
	go func() {
		seq := int64(0)
		for {
			select {
			case <-stop:
				bigDone <- seq
				return
			default:
			}
			seq++
			channel, payload := roomPayload(keys, "big", seq)
			h.Receive(ctx, channel, payload)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		room := "small-" + strconv.FormatInt(smallRooms.Add(1), 10)
		l := &countListener{}
		if _, err := h.Listen(ctx, room, l); err != nil {
			b.Error(err)
			return
		}
		seq := int64(0)
		var mine []time.Duration
		defer func() { latMu.Lock(); lat = append(lat, mine...); latMu.Unlock() }()
		for pb.Next() {
			t0 := time.Now()
			if listen {
				joiner := &countListener{}
				if _, err := h.Listen(ctx, room, joiner); err != nil {
					b.Error(err)
					return
				}
				h.Unlisten(room, joiner)
				mine = append(mine, time.Since(t0))
				continue
			}
			seq++
			channel, payload := roomPayload(keys, room, seq)
			h.Receive(ctx, channel, payload)
			mine = append(mine, time.Since(t0))
		}
		if !listen && l.n.Load() != seq {
			b.Errorf("room %s: delivered %d of %d", room, l.n.Load(), seq)
		}
	})
	b.StopTimer()
	close(stop)
	bigMsgs := <-bigDone
	b.ReportMetric(float64(bigMsgs)/b.Elapsed().Seconds(), "big-msgs/s")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)*999/1000].Nanoseconds()), "p99.9-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	}
}
