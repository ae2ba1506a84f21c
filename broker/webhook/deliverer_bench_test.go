package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"roomcast/broker/chat"
	"roomcast/broker/webhook"
)

// BenchmarkWebhookThroughput measures delivery from full outboxes across
// 100 rooms to a local receiver that answers 204 at once: b.N events
// stored first (not timed), then the time until the receiver has them
// all. One op is one event delivered; events/s is the figure to read.
func BenchmarkWebhookThroughput(b *testing.B) {
	const rooms = 100
	s := newSetup(b)
	var got atomic.Int64
	done := make(chan struct{})
	var want atomic.Int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got.Add(1) == want.Load() {
			close(done)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()

	// Store b.N messages (each with its message.created), 1000 a batch.
	posts := make([]chat.Post, 0, 1000)
	flush := func() {
		for _, r := range s.store.PostMany(context.Background(), posts) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		posts = posts[:0]
	}
	for i := range b.N {
		posts = append(posts, chat.Post{Room: fmt.Sprintf("room-%03d", i%rooms), User: "ann", Text: "hello"})
		if len(posts) == cap(posts) {
			flush()
		}
	}
	flush()
	want.Store(int64(b.N))

	b.ResetTimer()
	start := time.Now()
	s.start(b, rc.URL, func(o *webhook.Options) { o.WebhookTimeout = 5 * time.Second; o.WebhookLease = 10 * time.Second })
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d delivered within 5 min", got.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
