package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
)

// nextRoomMessage returns the next message event of a multi-room stream
// and its composite id.
func (c *sseClient) nextRoomMessage() (message, string) {
	c.t.Helper()
	m, id := c.nextMessageEvent()
	if id == "" || id == m.ID {
		c.t.Fatalf("event id %q, want a composite cursor", id)
	}
	return m, id
}

// expectRoomMessages reads want (room/text pairs) in any interleaving of
// rooms but in order within each room, and returns the last id.
func (c *sseClient) expectRoomMessages(want ...string) string {
	c.t.Helper()
	pending := map[string][]string{}
	for i := 0; i+1 < len(want); i += 2 {
		pending[want[i]] = append(pending[want[i]], want[i+1])
	}
	var last string
	for range len(want) / 2 {
		m, id := c.nextRoomMessage()
		if len(pending[m.Room]) == 0 || pending[m.Room][0] != m.Text {
			c.t.Fatalf("got %s in %s, want one of %v", m.Text, m.Room, pending)
		}
		pending[m.Room] = pending[m.Room][1:]
		last = id
	}
	return last
}

func TestMultiRoomStreamResumesWithAChangedRoomSet(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	s.post(t, "a", "before") // never sent: the first stream starts live

	first := s.openStream(t, "/stream?rooms=a,b,a")
	expectStatus(t, first.resp, nil, http.StatusOK, "")
	first.awaitOpen()
	s.post(t, "a", "a1")
	s.post(t, "b", "b1")
	s.post(t, "b", "b2")
	last := first.expectRoomMessages("a", "a1", "b", "b1", "b", "b2")
	first.Close()

	s.post(t, "a", "a2") // a is dropped
	s.post(t, "b", "b3") // b resumes exactly
	s.post(t, "c", "c1") // c is new: live only
	second := s.openStream(t, "/stream?rooms=b,c&last_event_id="+url.QueryEscape(last))
	second.awaitOpen()
	s.post(t, "c", "c2")
	s.post(t, "a", "a3")
	s.post(t, "b", "b4")
	last = second.expectRoomMessages("b", "b3", "c", "c2", "b", "b4")
	second.Close()

	// EventSource's reconnection: Last-Event-ID, the same rooms.
	s.post(t, "c", "c3")
	third := s.openStream(t, "/stream?rooms=b,c", "Last-Event-ID", last)
	third.awaitOpen()
	third.expectRoomMessages("c", "c3")
}

func TestMultiRoomStreamResetsOnlyTheRoomThatLostMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{HistoryMax: 2})
	c := s.openStream(t, "/stream?rooms=a,b")
	c.awaitOpen()
	s.post(t, "a", "a1")
	s.post(t, "b", "b1")
	last := c.expectRoomMessages("a", "a1", "b", "b1")
	c.Close()

	for i := 2; i <= 5; i++ {
		s.post(t, "a", fmt.Sprint("a", i)) // a2 and a3 fall out of history
	}
	s.post(t, "b", "b2")
	c = s.openStream(t, "/stream?rooms=a,b", "Last-Event-ID", last)
	c.awaitOpen()
	ev := c.next()
	var reset struct {
		Room, Reason string
	}
	if err := json.Unmarshal([]byte(ev.Data), &reset); err != nil || ev.Event != "reset" || ev.ID != "" ||
		reset.Room != "a" || reset.Reason != "trimmed" {
		t.Fatalf("first event %+v, want a reset of room a without id", ev)
	}
	c.expectRoomMessages("a", "a4", "a", "a5", "b", "b2")
}

func TestMultiRoomStreamRefuses(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	c := s.openStream(t, "/stream?rooms=a,b")
	c.awaitOpen()
	s.post(t, "a", "a1")
	_, token := c.nextRoomMessage()
	c.Close()
	forged := []byte(token)
	forged[10] ^= 1 // still base64url, no longer checksummed
	if forged[10] == '-' || forged[10] == '_' || forged[10] > 'z' {
		forged[10] = 'A'
	}
	var names []string
	for i := range 50 {
		names = append(names, fmt.Sprint("r", i))
	}
	many := strings.Join(names, ",") // 50 distinct rooms
	for _, tc := range []struct {
		name, query string
		typ         string
		detail      string // what the problem's detail must hold, if anything
	}{
		{name: "no rooms", query: "rooms=", typ: "urn:roomcast:problem:invalid-parameter"},
		{name: "bad room", query: "rooms=a,b*c", typ: "urn:roomcast:problem:invalid-room", detail: `"b*c"`},
		{name: "room with a space", query: "rooms=a,b%20c", typ: "urn:roomcast:problem:invalid-room", detail: `"b c"`},
		{name: "room with a control character", query: "rooms=a%0D%0Ab", typ: "urn:roomcast:problem:invalid-room", detail: `"a\r\nb"`},
		{name: "empty room", query: "rooms=a,,b", typ: "urn:roomcast:problem:invalid-room", detail: `""`},
		{name: "too many rooms", query: "rooms=" + many + ",x", typ: "urn:roomcast:problem:invalid-parameter"},
		{name: "forged cursor", query: "rooms=a,b&last_event_id=" + string(forged), typ: "urn:roomcast:problem:invalid-cursor"},
		{name: "truncated cursor", query: "rooms=a,b&last_event_id=" + token[:len(token)-5], typ: "urn:roomcast:problem:invalid-cursor"},
		{name: "message id as cursor", query: "rooms=a&last_event_id=mx2k9c1q7a-1", typ: "urn:roomcast:problem:invalid-cursor"},
		{name: "bad user", query: "rooms=a&user=%00", typ: "urn:roomcast:problem:invalid-parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, http.MethodGet, "/stream?"+tc.query, "")
			expectStatus(t, resp, body, http.StatusBadRequest, tc.typ)
			if p := problemOf(t, resp, body); !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("detail %q does not name the room %s", p.Detail, tc.detail)
			}
		})
	}
	// 50 distinct rooms are allowed; duplicates do not count.
	ok := s.openStream(t, "/stream?rooms="+many+","+many)
	expectStatus(t, ok.resp, nil, http.StatusOK, "")
}

func TestMultiRoomStreamNeedsReadPermissionOnEveryRoom(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret})})
	sam := hs256(t, "sam", jwt.MapClaims{"rooms": map[string]any{"read": []string{"support-*"}}})
	resp, body := s.do(t, http.MethodGet, "/stream?rooms=support-1,lobby,support-2", "", bearer(sam)...)
	expectStatus(t, resp, body, http.StatusForbidden, probForbidden)
	if p := problemOf(t, resp, body); !strings.Contains(p.Detail, "lobby") {
		t.Fatalf("403 detail %q does not name the room", p.Detail)
	}
	resp, body = s.do(t, http.MethodGet, "/stream?rooms=support-1", "")
	expectStatus(t, resp, body, http.StatusUnauthorized, probUnauthorized)
	c := s.openStream(t, "/stream?rooms=support-1,support-2&access_token="+sam)
	expectStatus(t, c.resp, nil, http.StatusOK, "")
	c.awaitOpen()
}

// A multi-room stream carries the join, leave and typing events of each of
// its rooms, from every instance, without an id line; its messages keep
// their composite ids.
func TestMultiRoomStreamCarriesPresenceAndTyping(t *testing.T) {
	t.Parallel()
	// The grace is ten beats: under a loaded machine a late beat must not end a
	// presence that the test expects to stay.
	const grace, beat = time.Second, 100 * time.Millisecond
	a := startServer(t, serverConfig{PresenceGrace: grace, PresenceBeat: beat})
	b := startServer(t, serverConfig{Redis: a.Redis, PresenceGrace: grace, PresenceBeat: beat})
	ann := a.openStream(t, "/stream?rooms=a,b&user=ann")
	ann.awaitOpen()
	// awaitEvent returns the next event named name that is not ann's own.
	awaitEvent := func(name string) (event, roomEvent) {
		t.Helper()
		for {
			ev := ann.nextAny()
			var data roomEvent
			if ev.Event != "message" {
				if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
					t.Fatalf("%s event data %q: %v", ev.Event, ev.Data, err)
				}
				if ev.ID != "" {
					t.Fatalf("%s event has id %q, want none", ev.Event, ev.ID)
				}
			}
			if ev.Event == name && data.User != "ann" {
				return ev, data
			}
			if ev.Event == "message" || data.User != "ann" {
				t.Fatalf("event %+v while waiting for %s", ev, name)
			}
		}
	}
	// The multi-room stream is present in each of its rooms.
	for _, room := range []string{"a", "b"} {
		waitFor(t, "ann is listed in "+room, func() bool {
			p := b.presence(t, room)
			return p.Count == 1 && p.Users[0].User == "ann"
		})
	}
	bob := b.openStream(t, "/rooms/b/stream?user=bob")
	bob.awaitOpen()
	if _, ev := awaitEvent("join"); ev.Room != "b" || ev.User != "bob" {
		t.Fatalf("join = %+v, want bob in b", ev)
	}
	resp, body := b.do(t, http.MethodPost, "/rooms/a/typing", `{"user":"carl"}`, "Content-Type", "application/json")
	expectStatus(t, resp, body, http.StatusNoContent, "")
	if _, ev := awaitEvent("typing"); ev.Room != "a" || ev.User != "carl" {
		t.Fatalf("typing = %+v, want carl in a", ev)
	}
	bob.Close()
	if _, ev := awaitEvent("leave"); ev.Room != "b" || ev.User != "bob" {
		t.Fatalf("leave = %+v, want bob in b", ev)
	}
	b.post(t, "b", "b1")
	if m, id := ann.nextRoomMessage(); m.Text != "b1" || id == "" {
		t.Fatalf("message %+v id %q", m, id)
	}
	// Its end leaves every room.
	ann.Close()
	for _, room := range []string{"a", "b"} {
		waitFor(t, "ann left "+room, func() bool { return b.presence(t, room).Count == 0 })
	}
}
