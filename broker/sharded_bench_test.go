package broker_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/redisscripts/redistest"
)

// BenchmarkShardedChurn measures subscribe churn in sharded mode: one op
// is a room getting its first local subscriber (SSUBSCRIBE, confirmed)
// and losing it (SUNSUBSCRIBE after the linger), each op a different room,
// from 16 goroutines at once so that changes are batched per shard.
func BenchmarkShardedChurn(b *testing.B) {
	b.Run("standalone", func(b *testing.B) {
		srv := redistest.Start(b)
		benchChurn(b, []string{srv.Addr})
	})
	b.Run("cluster-3", func(b *testing.B) {
		nodes := redistest.StartCluster(b, 3)
		addrs := make([]string, len(nodes))
		for i, n := range nodes {
			addrs[i] = n.Addr
		}
		benchChurn(b, addrs)
	})
}

func benchChurn(b *testing.B, addrs []string) {
	n := startShardedBuffer(b, 16, addrs...)
	var next atomic.Int64
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sub, err := n.hub.Subscribe(b.Context(), fmt.Sprint("churn-", next.Add(1)))
			if err != nil {
				b.Error(err)
				return
			}
			sub.Close()
		}
	})
	b.StopTimer()
	elapsed := b.Elapsed()
	// Every room is unsubscribed in the end: no churned channel is left.
	deadline := time.Now().Add(10 * time.Second)
	for left := 1; left > 0; time.Sleep(10 * time.Millisecond) {
		left = 0
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			chans, err := c.Do(b.Context(), "PUBSUB", "SHARDCHANNELS", keys.ShardChannel("churn-*")).StringSlice()
			c.Close()
			if err != nil {
				b.Fatal(err)
			}
			left += len(chans)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d churned rooms still subscribed", left)
		}
	}
	b.ReportMetric(2*float64(b.N)/elapsed.Seconds(), "subscription-changes/s")
}
