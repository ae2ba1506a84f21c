package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts"
)

// roomEvent is an ephemeral event seen on a room's Redis channel.
type roomEvent struct {
	Name string
	Room string `json:"room"`
	User string `json:"user"`
	Time string `json:"time"`
}

// watchEvents returns the ephemeral events published to room, read
// straight from Redis (stored messages are skipped).
func (s *testServer) watchEvents(t testing.TB, room string) <-chan roomEvent {
	t.Helper()
	rdb := s.Redis.Client()
	sub := rdb.Subscribe(t.Context(), redisscripts.NewKeys("roomcast:").Channel(room))
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	out := make(chan roomEvent, 100)
	go func() {
		for m := range sub.Channel() {
			name, data, ok := strings.Cut(m.Payload, "\n")
			if !ok || !strings.HasPrefix(name, "!") {
				continue
			}
			ev := roomEvent{Name: name[1:]}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Errorf("event %q: %v", m.Payload, err)
			}
			out <- ev
		}
	}()
	return out
}

func expectEvent(t testing.TB, events <-chan roomEvent, name, user string) roomEvent {
	t.Helper()
	select {
	case ev := <-events:
		if ev.Name != name || ev.User != user {
			t.Fatalf("event %+v, want %s of %s", ev, name, user)
		}
		if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
			t.Fatalf("event time %q: %v", ev.Time, err)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s event of %s within 10s", name, user)
	}
	return roomEvent{}
}

func expectNoEvent(t testing.TB, events <-chan roomEvent, within time.Duration) {
	t.Helper()
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(within):
	}
}

type presenceBody struct {
	Room  string `json:"room"`
	Count int    `json:"count"`
	Users []struct {
		User  string `json:"user"`
		Since string `json:"since"`
	} `json:"users"`
	Truncated bool `json:"truncated"`
}

func (s *testServer) presence(t testing.TB, room string, header ...string) presenceBody {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/presence", "", header...)
	expectStatus(t, resp, body, http.StatusOK, "")
	var p presenceBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Streams on two instances are listed by either; a stream's close is a
// leave once the grace period passed.
func TestPresenceAcrossInstances(t *testing.T) {
	t.Parallel()
	// The grace is ten beats: under a loaded machine a late beat must not end a
	// presence that the test expects to stay.
	const grace, beat = time.Second, 100 * time.Millisecond
	a := startServer(t, serverConfig{PresenceGrace: grace, PresenceBeat: beat})
	b := startServer(t, serverConfig{Redis: a.Redis, PresenceGrace: grace, PresenceBeat: beat})
	events := a.watchEvents(t, "r")

	ann := a.openStream(t, "/rooms/r/stream?user=ann")
	ann.awaitOpen()
	expectEvent(t, events, "join", "ann")
	bob := b.openStream(t, "/rooms/r/stream?user=bob")
	bob.awaitOpen()
	expectEvent(t, events, "join", "bob")
	anonymous := b.openStream(t, "/rooms/r/stream") // not listed
	anonymous.awaitOpen()

	p := b.presence(t, "r")
	if p.Room != "r" || p.Count != 2 || len(p.Users) != 2 || p.Truncated || p.Users[0].User != "ann" || p.Users[1].User != "bob" {
		t.Fatalf("presence = %+v, want ann then bob", p)
	}
	ann.Close()
	expectEvent(t, events, "leave", "ann")
	if p := a.presence(t, "r"); p.Count != 1 || p.Users[0].User != "bob" {
		t.Fatalf("presence after ann left = %+v, want bob", p)
	}
	if p := a.presence(t, "empty"); p.Count != 0 || len(p.Users) != 0 {
		t.Fatalf("presence of an empty room = %+v", p)
	}
}

func TestPresenceAndTypingRefuse(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, tc := range []struct {
		name, method, path, body, contentType string
		status                                int
		typ                                   string
	}{
		{name: "presence of a bad room", method: http.MethodGet, path: "/rooms/a*b/presence", status: 400, typ: "urn:roomcast:problem:invalid-room"},
		{name: "typing in a bad room", method: http.MethodPost, path: "/rooms/a*b/typing", status: 400, typ: "urn:roomcast:problem:invalid-room"},
		{name: "typing body not JSON", method: http.MethodPost, path: "/rooms/r/typing", body: "x", contentType: "application/json", status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "typing with an unknown field", method: http.MethodPost, path: "/rooms/r/typing", body: `{"user":"a","text":"x"}`, contentType: "application/json", status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "typing user with a line break", method: http.MethodPost, path: "/rooms/r/typing", body: `{"user":"a\nb"}`, contentType: "application/json", status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "typing body as text", method: http.MethodPost, path: "/rooms/r/typing", body: `{"user":"a"}`, contentType: "text/plain", status: 415, typ: "urn:roomcast:problem:unsupported-media-type"},
		{name: "typing body too large", method: http.MethodPost, path: "/rooms/r/typing", body: `{"user":"` + strings.Repeat("a", 2000) + `"}`, contentType: "application/json", status: 413, typ: "urn:roomcast:problem:body-too-large"},
		{name: "stream user with a line break", method: http.MethodGet, path: "/rooms/r/stream?user=a%0Ab", status: 400, typ: "urn:roomcast:problem:invalid-parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var header []string
			if tc.contentType != "" {
				header = []string{"Content-Type", tc.contentType}
			}
			resp, body := s.do(t, tc.method, tc.path, tc.body, header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}
}

// Typing reaches the room's channel at most once per interval per user,
// and is never stored.
func TestTypingIsRateLimitedAndNeverStored(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{TypingInterval: time.Hour})
	events := s.watchEvents(t, "r")
	typing := func(body string) {
		t.Helper()
		var header []string
		if body != "" {
			header = []string{"Content-Type", "application/json"}
		}
		resp, data := s.do(t, http.MethodPost, "/rooms/r/typing", body, header...)
		expectStatus(t, resp, data, http.StatusNoContent, "")
	}
	typing(`{"user":"ann"}`)
	if ev := expectEvent(t, events, "typing", "ann"); ev.Room != "r" {
		t.Fatalf("typing event room = %q", ev.Room)
	}
	for range 3 {
		typing(`{"user":"ann"}`) // within the interval: 204, nothing published
	}
	typing("") // anonymous, like a post without a user
	expectEvent(t, events, "typing", "anonymous")
	expectNoEvent(t, events, 300*time.Millisecond)
	if n := s.historyLen(t, "r"); n != 0 {
		t.Fatalf("typing stored %d messages", n)
	}
}

func TestTypingAndPresenceWithAuth(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret})})
	sam := hs256(t, "sam", jwt.MapClaims{"rooms": map[string]any{"read": []string{"support-*"}, "write": []string{"support-42"}}})
	events := s.watchEvents(t, "support-42")

	resp, body := s.do(t, http.MethodPost, "/rooms/support-42/typing", "", bearer(sam)...)
	expectStatus(t, resp, body, http.StatusNoContent, "")
	expectEvent(t, events, "typing", "sam")
	for _, tc := range []struct {
		name, path, body string
		header           []string
		status           int
		typ              string
	}{
		{name: "typing without a token", path: "/rooms/support-42/typing", status: 401, typ: probUnauthorized},
		{name: "typing without write permission", path: "/rooms/support-43/typing", header: bearer(sam), status: 403, typ: probForbidden},
		{name: "typing as another user", path: "/rooms/support-42/typing", body: `{"user":"ann"}`,
			header: append(bearer(sam), "Content-Type", "application/json"), status: 403, typ: probForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, http.MethodPost, tc.path, tc.body, tc.header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}

	stream := s.openStream(t, "/rooms/support-42/stream?access_token="+sam)
	stream.awaitOpen()
	expectEvent(t, events, "join", "sam")
	if p := s.presence(t, "support-42", bearer(sam)...); p.Count != 1 || p.Users[0].User != "sam" {
		t.Fatalf("presence = %+v, want sam", p)
	}
	resp, body = s.do(t, http.MethodGet, "/rooms/lobby/presence", "", bearer(sam)...)
	expectStatus(t, resp, body, http.StatusForbidden, probForbidden)
	other := s.openStream(t, "/rooms/support-42/stream?user=ann&access_token="+sam)
	expectStatus(t, other.resp, nil, http.StatusForbidden, "")
}
