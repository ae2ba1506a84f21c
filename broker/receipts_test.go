package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"roomcast/redisscripts"
)

// eventListener keeps the ephemeral events it is given.
type eventListener struct {
	mu     sync.Mutex
	events []*Message
}

func (l *eventListener) Deliver(m *Message) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.Ephemeral() {
		l.events = append(l.events, m)
	}
	return true
}

func (l *eventListener) Dropped(error) {}

func (l *eventListener) take() []*Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

// TestReadReceiptsThrottledPerReader: the reader's own streams get every
// move of the marker at once; the room's other members at most one
// receipt per reader per ReceiptInterval, with the newest marker.
func TestReadReceiptsThrottledPerReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		keys := redisscripts.NewKeys("t:")
		h := New(nil, Options{Keys: keys, History: emptyRooms{}, Encoder: benchEncoder{}, ClientBuffer: 16,
			DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
		l := &eventListener{}
		if _, err := h.Listen(ctx, "r", l); err != nil {
			t.Fatal(err)
		}
		read := func(user string, seq int, receipts bool) {
			h.Receive(ctx, keys.Channel("r"),
				fmt.Sprintf("!read\n{\"room\":\"r\",\"id\":\"e-%d\",\"user\":%q,\"receipts\":%v}", seq, user, receipts))
		}
		expect := func(what string, want ...string) {
			t.Helper()
			got := l.take()
			if len(got) != len(want)/3 {
				t.Fatalf("%s: %d events, want %d", what, len(got), len(want)/3)
			}
			for i, m := range got {
				reader, own, receipt := want[3*i], want[3*i+1], want[3*i+2]
				if m.Reader != reader || string(m.OwnBody) != own || string(m.Body) != receipt {
					t.Fatalf("%s: event %d = %q own %q receipt %q; want %q own %q receipt %q",
						what, i, m.Reader, m.OwnBody, m.Body, reader, own, receipt)
				}
			}
		}
		ownFrame := func(seq int) string {
			return fmt.Sprintf("event: read\ndata: {\"room\":\"r\",\"id\":\"e-%d\"}\n\n", seq)
		}
		receiptFrame := func(user string, seq int) string {
			return fmt.Sprintf("event: read\ndata: {\"room\":\"r\",\"id\":\"e-%d\",\"user\":%q}\n\n", seq, user)
		}

		read("ann", 1, true)
		expect("first", "ann", ownFrame(1), receiptFrame("ann", 1))
		read("ann", 2, true)
		read("ann", 3, true)
		read("bob", 1, true)
		expect("within the interval", "ann", ownFrame(2), "", "ann", ownFrame(3), "", "bob", ownFrame(1), receiptFrame("bob", 1))

		time.Sleep(ReceiptInterval)
		synctest.Wait()
		expect("after the interval", "ann", "", receiptFrame("ann", 3))

		read("ann", 4, false) // a room too big for receipts
		expect("no receipts", "ann", ownFrame(4), "")
		time.Sleep(2 * ReceiptInterval)
		synctest.Wait()
		expect("nothing waited")

		h.Receive(ctx, keys.Channel("r"), "!read\n{\"room\":\"r\"}")
		expect("malformed")
	})
}

// TestLateReceiptNeverFollowsANewerOne: a receipt whose timer is late
// (waiting for the room's lock while a newer read event goes out at once)
// is dropped, not sent after the newer one.
func TestLateReceiptNeverFollowsANewerOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		keys := redisscripts.NewKeys("t:")
		h := New(nil, Options{Keys: keys, History: emptyRooms{}, Encoder: benchEncoder{}, ClientBuffer: 16,
			DeliveryCheckInterval: time.Minute, RedisTimeout: time.Second})
		l := &eventListener{}
		if _, err := h.Listen(ctx, "r", l); err != nil {
			t.Fatal(err)
		}
		r := h.lockRoom("r")
		// The state when the timer of an older receipt is due but has not
		// got the lock yet.
		r.receipts = receipts{"ann": {sent: time.Now().Add(-2 * ReceiptInterval), pending: []byte("older"),
			timer: time.AfterFunc(time.Hour, func() {})}}
		m := &Message{Room: "r", Event: "read", Reader: "ann", OwnBody: []byte("own")}
		r.throttleReceiptLocked(m, []byte("newer"))
		r.deliverEventLocked(m)
		r.mu.Unlock()
		r.sendPendingReceipt("ann") // the late timer
		var bodies []string
		for _, e := range l.take() {
			bodies = append(bodies, string(e.Body))
		}
		if len(bodies) != 1 || bodies[0] != "newer" {
			t.Fatalf("receipts sent %q, want only the newer one", bodies)
		}
	})
}
