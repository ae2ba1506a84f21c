package api_test

import (
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
)

// TestEscapedRoomIds checks that a percent-encoded room id names the room
// it decodes to, everywhere a room id is read: posting, history, streams
// and token permissions. An escaped "/" or "%" stays invalid.
func TestEscapedRoomIds(t *testing.T) {
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret})})
	token := bearer(hs256(t, "ann", jwt.MapClaims{"rooms": map[string]any{"read": []string{"abc", "a-b"}, "write": []string{"abc", "a-b"}}}))
	stream := s.openStream(t, "/rooms/a%2Db/stream", token...)
	stream.awaitOpen()

	for _, tc := range []struct {
		path, room string
	}{
		{path: "/rooms/%61bc/messages", room: "abc"},
		{path: "/rooms/%61%62%63/messages", room: "abc"},
		{path: "/rooms/a%2Db/messages", room: "a-b"},
		{path: "/rooms/a%2db/messages", room: "a-b"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			before := s.historyLen(t, tc.room)
			resp, body := s.do(t, http.MethodPost, tc.path, `{"text":"hi"}`, append([]string{"Content-Type", "application/json"}, token...)...)
			expectStatus(t, resp, body, http.StatusCreated, "")
			if got := s.historyLen(t, tc.room) - before; got != 1 {
				t.Fatalf("room %s got %d messages, want 1", tc.room, got)
			}
			resp, body = s.do(t, http.MethodGet, tc.path+"?limit=1", "", token...)
			expectStatus(t, resp, body, http.StatusOK, "")
		})
	}
	for range 2 {
		if m := stream.nextMessage(); m.Room != "a-b" {
			t.Fatalf("stream of a%%2Db got a message of room %q", m.Room)
		}
	}

	for _, path := range []string{
		"/rooms/a%2Fb/messages",       // a slash
		"/rooms/..%2F..%2Fx/messages", // a traversal
		"/rooms/%2561bc/messages",     // "%61bc" itself: decoded once, not twice
		"/rooms/a%2A/messages",        // a glob
	} {
		resp, body := s.do(t, http.MethodPost, path, `{"text":"hi"}`, append([]string{"Content-Type", "application/json"}, token...)...)
		expectStatus(t, resp, body, http.StatusBadRequest, "urn:roomcast:problem:invalid-room")
	}
}
