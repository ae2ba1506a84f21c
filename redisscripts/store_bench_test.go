package redisscripts

// Store benchmarks against a real redis-server:
//
//	go test -run '^$' -bench 'Store|Publish' -benchmem ./redisscripts/

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

// benchStore returns a Store on a fresh redis-server, with the client
// settings main uses.
func benchStore(b *testing.B) (*Store, *redis.Client) {
	b.Helper()
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second})
	b.Cleanup(func() { rdb.Close() })
	return NewStore(rdb, NewKeys("bench:"), StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour}), rdb
}

var benchText = strings.Repeat("x", 200)

// BenchmarkStorePost stores and publishes a 200-byte message through the
// Lua script, into a room whose history is full (1000 messages), so every
// post also trims. sequential is one round trip at a time; parallel keeps
// GOMAXPROCS×4 posts in flight. "batched" is Store.Post, whose concurrent
// calls share pipelines; "unbatched" sends the same script call with
// Script.Run, one round trip per post, as Store.Post did before.
func BenchmarkStorePost(b *testing.B) {
	post := chat.Post{Room: "room", User: "bench", Text: benchText}
	for _, bc := range []struct {
		name string
		post func(ctx context.Context, s *Store) error
	}{
		{name: "batched", post: func(ctx context.Context, s *Store) error {
			_, err := s.Post(ctx, post)
			return err
		}},
		{name: "unbatched", post: func(ctx context.Context, s *Store) error {
			keys, args, err := s.postCall(post)
			if err != nil {
				return err
			}
			reply, err := postMessageScript.Run(ctx, s.rdb, keys, args...).Result()
			if err != nil {
				return err
			}
			_, err = postedOf(reply)
			return err
		}},
	} {
		b.Run("sequential/"+bc.name, func(b *testing.B) {
			store, _ := benchStore(b)
			fillRoom(b, store, "room", 1000)
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if err := bc.post(b.Context(), store); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
			reportRate(b, "posts/s")
		})
		b.Run("parallel/"+bc.name, func(b *testing.B) {
			store, _ := benchStore(b)
			fillRoom(b, store, "room", 1000)
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.post(context.Background(), store); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu)
			reportRate(b, "posts/s")
		})
	}
}

// BenchmarkPlainPublish is the floor BenchmarkStorePost is compared with: a
// PUBLISH of a message of the same size on the same channel, nothing stored.
func BenchmarkPlainPublish(b *testing.B) {
	message := `{"id":"mbench1-123456","seq":123456,"room":"room","user":"bench","text":"` + benchText +
		`","time":"2026-01-01T00:00:00.000Z"}`
	b.Run("sequential", func(b *testing.B) {
		store, rdb := benchStore(b)
		channel := store.keys.Channel("room")
		b.ReportAllocs()
		for b.Loop() {
			if err := rdb.Publish(b.Context(), channel, message).Err(); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, "publishes/s")
	})
	b.Run("parallel", func(b *testing.B) {
		store, rdb := benchStore(b)
		channel := store.keys.Channel("room")
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := rdb.Publish(context.Background(), channel, message).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, "publishes/s")
	})
}

// BenchmarkStoreHistory reads a page of 50 from a room of 1000 messages:
// the newest page, and the page after a cursor 100 messages back.
func BenchmarkStoreHistory(b *testing.B) {
	store, _ := benchStore(b)
	ids := fillRoom(b, store, "room", 1000)
	for _, bc := range []struct {
		name  string
		query chat.Query
	}{
		{name: "latest", query: chat.Query{Direction: chat.Latest, Limit: 50}},
		{name: "after", query: chat.Query{Direction: chat.After, Cursor: ids[899], Limit: 50}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := store.History(b.Context(), "room", bc.query)
				if err != nil {
					b.Fatal(err)
				}
				if len(page.Messages) != 50 {
					b.Fatalf("page of %d messages, want 50", len(page.Messages))
				}
			}
			reportRate(b, "pages/s")
		})
	}
}

// fillRoom posts n messages to room and returns their ids.
func fillRoom(b *testing.B, store *Store, room string, n int) []chat.ID {
	b.Helper()
	ids := make([]chat.ID, n)
	for i := range ids {
		p, err := store.Post(b.Context(), chat.Post{Room: room, User: "bench", Text: benchText})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = p.ID
	}
	return ids
}

// processCPU is the CPU time this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the client's CPU time per operation since start: on a
// shared machine a steadier figure than the wall time per operation.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

func reportRate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}
