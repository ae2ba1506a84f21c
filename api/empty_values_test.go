package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker/chat"
)

// TestEmptyValues checks the one rule openapi.yaml gives for empty values:
// a query parameter given empty is a 400, as its schema allows no empty
// value, while an empty Last-Event-ID header counts as absent.
func TestEmptyValues(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	first := s.post(t, "r", "first")
	second := s.post(t, "r", "second")

	t.Run("query parameters", func(t *testing.T) {
		for _, tc := range []struct{ path, typ string }{
			{path: "/rooms/r/messages?limit=", typ: "urn:roomcast:problem:invalid-parameter"},
			{path: "/rooms/r/messages?before=", typ: "urn:roomcast:problem:invalid-cursor"},
			{path: "/rooms/r/messages?after=", typ: "urn:roomcast:problem:invalid-cursor"},
			{path: "/rooms/r/messages?after=&limit=5", typ: "urn:roomcast:problem:invalid-cursor"},
			{path: "/rooms/r/stream?user=", typ: "urn:roomcast:problem:invalid-parameter"},
			{path: "/rooms/r/stream?last_event_id=", typ: "urn:roomcast:problem:invalid-cursor"},
			{path: "/stream?rooms=", typ: "urn:roomcast:problem:invalid-parameter"},
			{path: "/stream?rooms=r&user=", typ: "urn:roomcast:problem:invalid-parameter"},
			{path: "/stream?rooms=r&last_event_id=", typ: "urn:roomcast:problem:invalid-cursor"},
		} {
			resp, body := s.do(t, http.MethodGet, tc.path, "")
			expectStatus(t, resp, body, http.StatusBadRequest, tc.typ)
		}
	})
	t.Run("empty Last-Event-ID", func(t *testing.T) {
		// Absent: the stream is live, or resumes from last_event_id.
		live := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", "")
		expectStatus(t, live.resp, nil, http.StatusOK, "")
		live.awaitOpen()
		resumed := s.openStream(t, "/rooms/r/stream?last_event_id="+first.ID, "Last-Event-ID", "")
		expectStatus(t, resumed.resp, nil, http.StatusOK, "")
		if got := resumed.nextMessage(); got != second {
			t.Fatalf("resumed with %+v, want %+v", got, second)
		}

		id, err := chat.ParseID(first.ID)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := cursor.Codec{}.NewEncoder([]string{"r"}, []chat.ID{id})
		if err != nil {
			t.Fatal(err)
		}
		multi := s.openStream(t, "/stream?rooms=r&last_event_id="+url.QueryEscape(enc.Token()), "Last-Event-ID", "")
		expectStatus(t, multi.resp, nil, http.StatusOK, "")
		if got, _ := multi.nextRoomMessage(); got != second {
			t.Fatalf("multi-room stream resumed with %+v, want %+v", got, second)
		}
	})
}
