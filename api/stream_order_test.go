package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"roomcast/api"
)

// TestStreamChecksInSpecOrder checks both kinds of stream in the order
// openapi.yaml gives: room ids, token, the stream limits (the busy 200,
// then 429), and only then the resume point. So a client at its limit is
// told so whatever its resume point, and EventSource, which gives up on a
// 400 but retries after a 200, keeps retrying while the server is full.
func TestStreamChecksInSpecOrder(t *testing.T) {
	t.Parallel()
	badResume := []struct {
		name, path string
		header     []string
	}{
		{name: "Last-Event-ID", path: "/rooms/r/stream", header: []string{"Last-Event-ID", "garbage"}},
		{name: "last_event_id", path: "/rooms/r/stream?last_event_id=garbage"},
		{name: "multi-room Last-Event-ID", path: "/stream?rooms=r", header: []string{"Last-Event-ID", "AAAA"}},
		{name: "multi-room last_event_id", path: "/stream?rooms=r&last_event_id=AAAA"},
	}
	openOne := func(t *testing.T, s *testServer) {
		t.Helper()
		c := s.openStream(t, "/rooms/r/stream")
		expectStatus(t, c.resp, nil, http.StatusOK, "")
		c.awaitOpen()
	}

	t.Run("bad resume points", func(t *testing.T) {
		s := startServer(t, serverConfig{})
		for _, tc := range badResume {
			resp, body := s.do(t, http.MethodGet, tc.path, "", tc.header...)
			expectStatus(t, resp, body, http.StatusBadRequest, "urn:roomcast:problem:invalid-cursor")
		}
	})
	t.Run("MAX_STREAMS_PER_CLIENT reached", func(t *testing.T) {
		s := startServer(t, serverConfig{Security: api.Security{MaxStreamsPerClient: 1}})
		openOne(t, s)
		for _, tc := range badResume {
			resp, body := s.do(t, http.MethodGet, tc.path, "", tc.header...)
			expectStatus(t, resp, body, http.StatusTooManyRequests, probTooMany)
		}
	})
	t.Run("MAX_STREAMS reached", func(t *testing.T) {
		s := startServer(t, serverConfig{Security: api.Security{MaxStreams: 1}})
		openOne(t, s)
		for _, tc := range badResume {
			// Not through the contract check, whose rule that a request
			// the spec rejects gets a 4xx does not know that the busy 200
			// comes first.
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := s.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), ": server busy, retry shortly") {
				t.Fatalf("%s: %d %q, want the busy 200", tc.name, resp.StatusCode, body)
			}
		}
	})
	t.Run("room ids before the token", func(t *testing.T) {
		s := authServer(t, api.Security{})
		for _, path := range []string{"/rooms/a*b/stream", "/stream?rooms=a,b*c"} {
			resp, body := s.do(t, http.MethodGet, path, "")
			expectStatus(t, resp, body, http.StatusBadRequest, "urn:roomcast:problem:invalid-room")
		}
	})
}
