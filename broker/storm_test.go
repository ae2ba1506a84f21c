package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"roomcast/broker/chat"
	"roomcast/redisscripts"
)

// gatedHistory is a room "r" of messages e-1 … e-last whose history reads
// are counted and wait for gate to close, so that a test can have many
// catch-ups arrive while the first read is in flight.
type gatedHistory struct {
	last  int64
	gate  chan struct{}
	reads atomic.Int64
}

func (g *gatedHistory) Positions(_ context.Context, rooms []string) ([]chat.ID, error) {
	ids := make([]chat.ID, len(rooms))
	for i := range ids {
		ids[i] = chat.ID{Epoch: "e", Seq: g.last}
	}
	return ids, nil
}

func (g *gatedHistory) History(ctx context.Context, _ string, q chat.Query) (chat.Page, error) {
	g.reads.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return chat.Page{}, ctx.Err()
	}
	var page chat.Page
	for seq := q.Cursor.Seq + 1; seq <= g.last && len(page.Messages) < q.Limit; seq++ {
		page.Messages = append(page.Messages, fmt.Appendf(nil, `{"id":"e-%d","text":"m"}`, seq))
	}
	page.HasMore = q.Cursor.Seq+int64(len(page.Messages)) < g.last
	return page, nil
}

type quietListener struct{}

func (quietListener) Deliver(*Message) bool { return true }
func (quietListener) Dropped(error)         {}

// A storm of resumes of one room (many streams reconnecting at once, from
// the same position or from later ones) while the room's ring is still
// cold costs one history read: every catch-up whose range the read in
// flight covers waits for it instead of reading the same messages again.
func TestConcurrentResumesOfOneRoomShareOneRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		hist := &gatedHistory{last: 60, gate: make(chan struct{})}
		h := New(nil, Options{Keys: redisscripts.NewKeys("t:"), History: hist, ClientBuffer: 16,
			DeliveryCheckInterval: time.Hour, RedisTimeout: time.Minute})
		if _, err := h.Listen(ctx, "r", quietListener{}); err != nil {
			t.Fatal(err)
		}
		// The first stream to resume starts the read; 60 more arrive while
		// it is in flight, from its position and from 30 later ones.
		froms := []int64{10}
		for i := range 60 {
			froms = append(froms, 10+int64(i%31))
		}
		pages := make([]Page, len(froms))
		errs := make([]error, len(froms))
		var wg sync.WaitGroup
		resume := func(i int) {
			wg.Go(func() { pages[i], errs[i] = h.Since(ctx, "r", chat.ID{Epoch: "e", Seq: froms[i]}) })
		}
		resume(0)
		synctest.Wait() // the first read waits at the gate
		for i := 1; i < len(froms); i++ {
			resume(i)
		}
		synctest.Wait()
		close(hist.gate)
		wg.Wait()
		for i, from := range froms {
			if errs[i] != nil {
				t.Fatalf("resume from e-%d: %v", from, errs[i])
			}
			p := pages[i]
			if p.Reset != nil || p.HasMore || int64(len(p.Messages)) != hist.last-from {
				t.Fatalf("resume from e-%d: reset %v, more %v, %d messages; want %d",
					from, p.Reset, p.HasMore, len(p.Messages), hist.last-from)
			}
			for j, m := range p.Messages {
				if want := (chat.ID{Epoch: "e", Seq: from + 1 + int64(j)}); m.ID != want {
					t.Fatalf("resume from e-%d: message %d is %v, want %v", from, j, m.ID, want)
				}
			}
		}
		if n := hist.reads.Load(); n != 1 {
			t.Fatalf("%d history reads for %d concurrent resumes of one room, want 1", n, len(froms))
		}
		if n := h.Stats().HistoryHits; n != 1 {
			t.Fatalf("HistoryHits %d, want 1", n)
		}
	})
}
