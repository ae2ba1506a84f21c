package broker_test

import (
	"testing"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

// Streams resuming a room one after another from the same position cost one
// history read: the first read is backfilled into the room's ring, which
// serves the others, and keeps serving them as live messages arrive.
func TestResumesOneAfterAnotherReadHistoryOnce(t *testing.T) {
	srv := redistest.Start(t)
	n := startNode(t, srv, nodeConfig{})
	var posted []chat.Posted
	for i := range 60 {
		posted = append(posted, n.post(t, "r", "m"+string(rune('a'+i%26))))
	}
	live := subscribe(t, n.hub, "r") // the room is open; its ring is empty
	from := posted[9].ID
	before := n.hub.Stats()
	check := func(want []chat.Posted) {
		t.Helper()
		page, err := n.hub.Since(t.Context(), "r", from)
		if err != nil {
			t.Fatal(err)
		}
		if page.Reset != nil || page.HasMore || len(page.Messages) != len(want) {
			t.Fatalf("page: reset %v, more %v, %d messages; want %d", page.Reset, page.HasMore, len(page.Messages), len(want))
		}
		for i, m := range page.Messages {
			if m.ID != want[i].ID {
				t.Fatalf("message %d is %v, want %v", i, m.ID, want[i].ID)
			}
		}
	}
	for range 5 {
		check(posted[10:])
	}
	posted = append(posted, n.post(t, "r", "live"))
	if got := receive(t, live); got.ID != posted[60].ID {
		t.Fatalf("live message %v, want %v", got.ID, posted[60].ID)
	}
	check(posted[10:])
	check2 := posted[30].ID // a later position is served too
	if page, err := n.hub.Since(t.Context(), "r", check2); err != nil || len(page.Messages) != 30 {
		t.Fatalf("since %v: %d messages, %v; want 30", check2, len(page.Messages), err)
	}
	after := n.hub.Stats()
	if reads := after.HistoryHits - before.HistoryHits; reads != 1 {
		t.Fatalf("%d history reads for 7 resumes, want 1", reads)
	}
	if hits := after.RingHits - before.RingHits; hits != 6 {
		t.Fatalf("%d ring hits, want 6", hits)
	}
}
