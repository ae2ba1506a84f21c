package broker

// Fan-out benchmarks. They run inside the package so that they can feed the
// hub's receive path (channel → room, id parsing, Encode, dispatch) with
// prepared Pub/Sub messages: a Redis round trip per message would hide the
// cost of delivering to each extra subscriber. BenchmarkFanOutThroughRedis
// measures the whole path, post included, for comparison.
//
//	go test -run '^$' -bench 'FanOut' -benchmem ./broker/

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/api/sse"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

var fanOutSizes = []int{1, 100, 10_000}

// benchEncode is api.EncodeMessage, which this package cannot import.
func benchEncode(m *Message) []byte {
	return sse.AppendEvent(nil, m.ID.String(), "message", m.Data)
}

// emptyRooms is a History in which every room is new and empty.
type emptyRooms struct{}

func (emptyRooms) Positions(_ context.Context, rooms []string) ([]redisscripts.ID, error) {
	return make([]redisscripts.ID, len(rooms)), nil
}

func (emptyRooms) History(context.Context, string, redisscripts.Query) (redisscripts.Page, error) {
	return redisscripts.Page{}, nil
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
// encode=once is the hub as built: Encode runs once per message and every
// subscriber shares the frame. encode=per-subscriber is a variant that exists
// only here: the hub has no Encode and each subscriber encodes the message
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
	opts := Options{Keys: keys, History: emptyRooms{}, Buffer: 4, CheckInterval: time.Minute, Timeout: time.Second}
	if encodeOnce {
		opts.Encode = benchEncode
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
		h.receive(b.Context(), next[0])
		next = next[1:]
		for _, s := range subs {
			m, ok := <-s.ch
			if !ok {
				b.Fatalf("subscription dropped: %v", s.Err())
			}
			if encodeOnce {
				frames += len(m.Frame)
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
	h := New(rdb, Options{Keys: keys, History: store, Encode: benchEncode, Buffer: 16,
		CheckInterval: time.Minute, Timeout: 5 * time.Second})
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
	post := redisscripts.Post{Room: "room", User: "bench", Text: strings.Repeat("x", 200)}

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
