package broker

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"roomcast/broker/chat"
	"roomcast/redisscripts"
)

// stalledHistory is a memHistory whose history reads wait for their
// context while stalled, as reads do while Redis does not answer.
type stalledHistory struct {
	*memHistory
	stalled atomic.Bool
}

func (s *stalledHistory) History(ctx context.Context, room string, q chat.Query) (chat.Page, error) {
	if s.stalled.Load() {
		<-ctx.Done()
		return chat.Page{}, ctx.Err()
	}
	return s.memHistory.History(ctx, room, q)
}

// A repair started by a subscription whose context then ends (in sharded
// mode, a shard connection that failed mid-repair) must not leave its room
// repairing for good: the room's next message repairs it anew.
func TestRepairCutShortLeavesTheRoomRepairable(t *testing.T) {
	keys := redisscripts.NewKeys("cut:")
	hist := &stalledHistory{memHistory: &memHistory{rooms: make(map[string][][]byte)}}
	h := New(nil, Options{Keys: keys, History: hist, Encoder: benchEncoder{}, ClientBuffer: 16,
		DeliveryCheckInterval: time.Hour, RedisTimeout: 200 * time.Millisecond}) // a stalled read ends as a Redis call times out
	publish := func(ctx context.Context, seq int64, received bool) {
		channel, payload := roomPayload(keys, "a", seq)
		hist.store("a", payload)
		if received {
			h.Receive(ctx, channel, payload)
		}
	}
	publish(t.Context(), 1, false)
	l := &recorder{}
	if _, err := h.Listen(t.Context(), "a", l); err != nil {
		t.Fatal(err)
	}

	shardCtx, shardFailed := context.WithCancel(t.Context())
	hist.stalled.Store(true)
	publish(shardCtx, 2, false)
	publish(shardCtx, 3, true) // 2 is missing: a repair starts on shardCtx
	shardFailed()
	h.repairs.Wait() // the repair gave up with its context

	hist.stalled.Store(false)
	publish(t.Context(), 4, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		n := len(l.got)
		l.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener has %d of messages 2..4: the room stayed in its abandoned repair", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, id := range l.got {
		if id.Seq != int64(i+2) {
			t.Fatalf("message %d has seq %d, want %d", i, id.Seq, i+2)
		}
	}
}
