package redisscripts

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// BenchmarkStoreChange compares an edit and a delete with a post, one
// round trip at a time, in a room whose history is full (1000 messages):
// the client's CPU per operation (cpu-ns/op), Redis's time in the script
// per operation (redis-us/op, from INFO commandstats) and the script calls
// per operation (calls/op; one each).
//
//	go test -run '^$' -bench StoreChange -benchmem ./redisscripts/
func BenchmarkStoreChange(b *testing.B) {
	for _, bc := range []struct {
		name string
		op   func(b *testing.B, s *Store, ids []chat.ID, i int) error
	}{
		{name: "post", op: func(b *testing.B, s *Store, _ []chat.ID, _ int) error {
			_, err := s.Post(b.Context(), chat.Post{Room: "room", User: "bench", Text: benchText})
			return err
		}},
		{name: "edit", op: func(b *testing.B, s *Store, ids []chat.ID, i int) error {
			_, err := s.Change(b.Context(), chat.Change{Room: "room", ID: ids[i%len(ids)], User: "bench", Text: benchText})
			return err
		}},
		{name: "delete", op: func(b *testing.B, s *Store, ids []chat.ID, i int) error {
			if i >= len(ids) {
				b.Skip("more deletes than messages; use -benchtime 1000x or less")
			}
			_, err := s.Change(b.Context(), chat.Change{Room: "room", ID: ids[i], User: "bench", Delete: true})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			store, rdb := benchStore(b)
			ids := fillRoom(b, store, "room", 1000)
			if err := rdb.ConfigResetStat(b.Context()).Err(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := processCPU()
			i := 0
			for b.Loop() {
				if err := bc.op(b, store, ids, i); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportCPU(b, cpu)
			calls, usec := scriptStats(b, rdb)
			b.ReportMetric(float64(usec)/float64(b.N), "redis-us/op")
			b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
		})
	}
}

var scriptStat = regexp.MustCompile(`cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)`)

// scriptStats sums the calls of EVALSHA and EVAL since the last CONFIG
// RESETSTAT and Redis's time in them, in microseconds.
func scriptStats(b *testing.B, rdb *redis.Client) (calls, usec int64) {
	b.Helper()
	info, err := rdb.Info(b.Context(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range scriptStat.FindAllStringSubmatch(info, -1) {
		c, _ := strconv.ParseInt(m[1], 10, 64)
		u, _ := strconv.ParseInt(m[2], 10, 64)
		calls, usec = calls+c, usec+u
	}
	return calls, usec
}
