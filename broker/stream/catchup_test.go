package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// flakyRooms is the hub, except that its first failures history reads
// find Redis unavailable.
type flakyRooms struct {
	*broker.Hub
	failures atomic.Int32
}

func (f *flakyRooms) Since(ctx context.Context, room string, from chat.ID) (broker.Page, error) {
	if f.failures.Add(-1) >= 0 {
		return broker.Page{}, fmt.Errorf("history: %w: pool timeout", chat.ErrUnavailable)
	}
	return f.Hub.Since(ctx, room, from)
}

func TestCatchUpOutlastsRedisBeingBrieflyUnavailable(t *testing.T) {
	r := startRig(t, time.Minute)
	var posted []chat.Posted
	for i := range 3 {
		p, err := r.store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		posted = append(posted, p)
	}
	rooms := &flakyRooms{Hub: r.hub}
	rooms.failures.Store(2)
	r.engine = stream.New(stream.Options{
		Rooms: rooms, Frames: frames{}, HeartbeatInterval: time.Minute, StreamWriteTimeout: 5 * time.Second, ClientBuffer: 64,
	})
	conn := r.open(t, "r", &posted[0].ID)
	rd := bufio.NewReader(conn)
	for _, p := range posted[1:] {
		readUntil(t, rd, conn, "id: "+p.ID.String())
	}
	if left := rooms.failures.Load(); left >= 0 {
		t.Fatalf("%d failures left unused; the test proves nothing", left+1)
	}
}
