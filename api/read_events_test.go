package api_test

import (
	"encoding/json"
	"testing"
)

// expectRead reads the next event and checks that it is a read event of
// room at id, by user ("" for the stream's own).
func expectRead(t *testing.T, c *sseClient, room, id, user string) {
	t.Helper()
	ev := c.next()
	var data map[string]string
	if ev.Event != "read" || ev.ID != "" || json.Unmarshal([]byte(ev.Data), &data) != nil {
		t.Fatalf("got %+v, want a read event without id", ev)
	}
	want := map[string]string{"room": room, "id": id}
	if user != "" {
		want["user"] = user
	}
	if len(data) != len(want) || data["room"] != room || data["id"] != id || data["user"] != user {
		t.Fatalf("read event data %s, want %v", ev.Data, want)
	}
}

func expectMessageEvent(t *testing.T, c *sseClient, id string) {
	t.Helper()
	if m, _ := c.nextMessageEvent(); m.ID != id {
		t.Fatalf("got message %+v, want %s", m, id)
	}
}

// TestReadEventsOnStreams: the user's own streams hear each move of their
// marker, posting included; others get a receipt in a small room only.
func TestReadEventsOnStreams(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{ReceiptsMax: 10})
	ann := s.openStream(t, "/rooms/rr/stream?user=ann")
	ann.awaitOpen()
	annMulti := s.openStream(t, "/stream?rooms=other,rr&user=ann")
	annMulti.awaitOpen()
	bob := s.openStream(t, "/rooms/rr/stream?user=bob")
	bob.awaitOpen()

	m1 := s.postBy(t, "rr", "bob", "one")
	expectMessageEvent(t, ann, m1.ID)
	expectMessageEvent(t, annMulti, m1.ID)
	expectMessageEvent(t, bob, m1.ID)
	expectRead(t, bob, "rr", m1.ID, "") // posting marks bob's read

	s.markRead(t, "rr", "ann", m1.ID)
	expectRead(t, ann, "rr", m1.ID, "")
	expectRead(t, annMulti, "rr", m1.ID, "")
	expectRead(t, bob, "rr", m1.ID, "ann")

	// Nothing else came: the next event of each is the next message.
	m2 := s.postBy(t, "rr", "bob", "two")
	expectMessageEvent(t, ann, m2.ID)
	expectMessageEvent(t, annMulti, m2.ID)
	expectMessageEvent(t, bob, m2.ID)
	expectRead(t, bob, "rr", m2.ID, "")
}

// TestNoReceiptsInBigRooms: past READ_RECEIPTS_MAX_WATCHERS present users,
// a marker's move reaches only its user's streams.
func TestNoReceiptsInBigRooms(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{ReceiptsMax: 1})
	ann := s.openStream(t, "/rooms/big/stream?user=ann")
	ann.awaitOpen()
	bob := s.openStream(t, "/rooms/big/stream?user=bob")
	bob.awaitOpen()
	waitFor(t, "two present users", func() bool { return s.presence(t, "big").Count == 2 })
	m1 := s.postBy(t, "big", "carl", "one")
	expectMessageEvent(t, ann, m1.ID)
	expectMessageEvent(t, bob, m1.ID)
	s.markRead(t, "big", "ann", m1.ID)
	expectRead(t, ann, "big", m1.ID, "")
	m2 := s.postBy(t, "big", "carl", "two")
	expectMessageEvent(t, bob, m2.ID) // no receipt before it
}
