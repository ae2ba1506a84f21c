package broker

import (
	"fmt"
	"testing"

	"roomcast/broker/chat"
)

func TestRingServesOnlyWhatItHoldsWhole(t *testing.T) {
	id := func(epoch string, seq int64) chat.ID { return chat.ID{Epoch: epoch, Seq: seq} }
	r := newRing(4)
	for seq := int64(1); seq <= 6; seq++ { // holds a-3 … a-6
		r.add(&Message{ID: id("a", seq)})
	}
	last := id("a", 6)
	for _, tc := range []struct {
		name string
		from chat.ID
		want string // seqs served, or "redis"
	}{
		{name: "at the newest", from: id("a", 6), want: "[]"},
		{name: "inside", from: id("a", 4), want: "[5 6]"},
		{name: "at the oldest", from: id("a", 3), want: "[4 5 6]"},
		{name: "right before the oldest", from: id("a", 2), want: "[3 4 5 6]"},
		{name: "older than the ring", from: id("a", 1), want: "redis"},
		{name: "another epoch", from: id("b", 4), want: "redis"},
		{name: "no position", from: chat.ID{}, want: "redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, ok := r.after(tc.from, last)
			got := "redis"
			if ok {
				seqs := []int64{}
				for _, m := range msgs {
					seqs = append(seqs, m.ID.Seq)
				}
				got = fmt.Sprint(seqs)
			}
			if got != tc.want {
				t.Fatalf("after(%v) = %s, want %s", tc.from, got, tc.want)
			}
		})
	}
	r.add(&Message{ID: id("b", 1)}) // a new epoch starts the ring afresh
	if msgs, ok := r.after(id("a", 6), id("b", 1)); ok {
		t.Fatalf("after a new epoch the ring served %d messages from the old one", len(msgs))
	}
}

func TestRingPrependKeepsTheNewest(t *testing.T) {
	msg := func(seq int64) *Message { return &Message{ID: chat.ID{Epoch: "e", Seq: seq}} }
	r := newRing(4)
	r.add(msg(5))
	r.add(msg(6))
	r.prepend([]*Message{msg(2), msg(3), msg(4)})
	got, ok := r.after(chat.ID{Epoch: "e", Seq: 2}, chat.ID{Epoch: "e", Seq: 6})
	if !ok || len(got) != 4 || got[0].ID.Seq != 3 || got[3].ID.Seq != 6 {
		t.Fatalf("after prepend: %v %v, want 3..6", got, ok)
	}
	r.prepend([]*Message{msg(1)}) // full: nothing more fits
	if o := r.oldest(); o.ID.Seq != 3 {
		t.Fatalf("oldest %v, want seq 3", o.ID)
	}
	r.add(msg(7)) // the ring still wraps as before
	if o := r.oldest(); o.ID.Seq != 4 {
		t.Fatalf("oldest after add %v, want seq 4", o.ID)
	}
}
