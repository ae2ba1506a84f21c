package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// problem is an RFC 9457 problem details body.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// wantProblem fails the test unless resp is a problem+json answer with the
// given status and type, and returns the problem.
func wantProblem(t testing.TB, resp *http.Response, body []byte, status int, typ string) problem {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status = %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Fatalf("%s %s: Content-Type = %q, want application/problem+json", resp.Request.Method, resp.Request.URL, got)
	}
	var p problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s %s: problem body %s: %v", resp.Request.Method, resp.Request.URL, body, err)
	}
	if p.Status != status || p.Type != typ || p.Title == "" {
		t.Fatalf("%s %s: problem = %+v, want status %d and type %s", resp.Request.Method, resp.Request.URL, p, status, typ)
	}
	if status < 500 && p.Detail == "" {
		t.Fatalf("%s %s: problem %+v has no detail", resp.Request.Method, resp.Request.URL, p)
	}
	return p
}

const (
	typeInvalidRoom         = "urn:roomcast:problem:invalid-room"
	typeInvalidCursor       = "urn:roomcast:problem:invalid-cursor"
	typeInvalidParameter    = "urn:roomcast:problem:invalid-parameter"
	typeInvalidBody         = "urn:roomcast:problem:invalid-body"
	typeIdempotencyConflict = "urn:roomcast:problem:idempotency-conflict"
	typeBodyTooLarge        = "urn:roomcast:problem:body-too-large"
	typeUnsupportedMedia    = "urn:roomcast:problem:unsupported-media-type"
	typeNotFound            = "urn:roomcast:problem:not-found"
	typeMethodNotAllowed    = "urn:roomcast:problem:method-not-allowed"
	typeUnavailable         = "urn:roomcast:problem:unavailable"
	typeForbidden           = "urn:roomcast:problem:forbidden"
)

// redisCalls returns how often Redis ran each command since the last
// CONFIG RESETSTAT, keyed by lower-case command name.
func (s *testServer) redisCalls(t testing.TB) map[string]int {
	t.Helper()
	info, err := s.Redis.Client().Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		calls[name], _ = strconv.Atoi(n)
	}
	return calls
}

// resetRedisStats zeroes the command counters redisCalls reads.
func (s *testServer) resetRedisStats(t testing.TB) {
	t.Helper()
	if err := s.Redis.Client().ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestBadRoomIDsAreRejectedWithoutTouchingRedis sends every endpoint
// invalid room ids and checks that Redis ran no data command at all.
func TestBadRoomIDsAreRejectedWithoutTouchingRedis(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{CheckInterval: time.Hour})
	rooms := map[string]string{
		"star":          "a*b",
		"question mark": "a%3Fb",
		"open bracket":  "a[b",
		"close bracket": "a]b",
		"brackets":      "%5Ba%5D",
		"braces":        "%7Bx%7D",
		"raw braces":    "{x}",
		"open brace":    "a%7B",
		"colon":         "a:b",
		"encoded slash": "a%2Fb",
		"backslash":     "a%5Cb",
		"space":         "a%20b",
		"plus":          "a+b",
		"empty":         "",
		"129 chars":     strings.Repeat("r", 129),
		"non-ASCII":     "caf%C3%A9",
		"NUL":           "a%00b",
		"newline":       "a%0Ab",
		"percent":       "a%25b",
	}
	s.resetRedisStats(t)
	for name, room := range rooms {
		t.Run(name, func(t *testing.T) {
			resp, body := s.do(t, http.MethodPost, "/rooms/"+room+"/messages", `{"text":"hi"}`,
				"Content-Type", "application/json", "Idempotency-Key", "k")
			wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidRoom)
			resp, body = s.do(t, http.MethodGet, "/rooms/"+room+"/messages?limit=5", "")
			wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidRoom)
			resp, body = s.do(t, http.MethodGet, "/rooms/"+room+"/stream", "", "Last-Event-ID", "a-1")
			wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidRoom)
		})
	}
	// Only the hub's own subscription traffic may show up.
	allowed := map[string]bool{"publish": true, "psubscribe": true, "ping": true, "hello": true, "info": true, "client|setinfo": true, "config|resetstat": true}
	for cmd, n := range s.redisCalls(t) {
		if !allowed[cmd] {
			t.Fatalf("Redis ran %s %d times for requests with bad room ids", cmd, n)
		}
	}
	if n, err := s.Redis.Client().DBSize(t.Context()).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want 0", n, err)
	}
}

func TestValidRoomIDsAreAccepted(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, room := range []string{"a", "Lobby-1", "x.y_z", "..", strings.Repeat("r", 128)} {
		m := s.post(t, room, "hi")
		if m.Room != room {
			t.Fatalf("posted to %q, message room %q", room, m.Room)
		}
		resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/messages", "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), m.ID) {
			t.Fatalf("GET history of %q: %d %s", room, resp.StatusCode, body)
		}
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, tt := range []struct{ method, path string }{
		{method: http.MethodGet, path: "/nope"},
		{method: http.MethodGet, path: "/room"},
		{method: http.MethodGet, path: "/rooms/a/nope"},
		{method: http.MethodGet, path: "/rooms/a/messages/a-1/b"},
		{method: http.MethodGet, path: "/rooms/a/b/stream"},
		{method: http.MethodPost, path: "/rooms/a/b/messages"},
		{method: http.MethodGet, path: "/rooms/a/streams"},
	} {
		resp, body := s.do(t, tt.method, tt.path, "")
		wantProblem(t, resp, body, http.StatusNotFound, typeNotFound)
		if bytes.Contains(body, []byte("<")) {
			t.Fatalf("%s %s: body %s looks like HTML", tt.method, tt.path, body)
		}
	}
}

func TestWrongMethodIsNotAllowed(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, tt := range []struct {
		method, path string
		allow        []string
	}{
		{method: http.MethodDelete, path: "/rooms/a/messages", allow: []string{"GET", "POST"}},
		{method: http.MethodPut, path: "/rooms/a/messages", allow: []string{"GET", "POST"}},
		{method: http.MethodPost, path: "/rooms/a/stream", allow: []string{"GET"}},
		{method: http.MethodPost, path: "/healthz", allow: []string{"GET"}},
		{method: http.MethodPatch, path: "/openapi.yaml", allow: []string{"GET"}},
	} {
		resp, body := s.do(t, tt.method, tt.path, "")
		wantProblem(t, resp, body, http.StatusMethodNotAllowed, typeMethodNotAllowed)
		allow := resp.Header.Get("Allow")
		if allow == "" {
			t.Fatalf("%s %s: 405 without an Allow header", tt.method, tt.path)
		}
		for _, m := range tt.allow {
			if !strings.Contains(allow, m) {
				t.Fatalf("%s %s: Allow = %q, want it to list %s", tt.method, tt.path, allow, m)
			}
		}
		if strings.Contains(allow, tt.method) {
			t.Fatalf("%s %s: Allow = %q lists the refused method", tt.method, tt.path, allow)
		}
	}
}

// TestRedisDownIsServiceUnavailable kills Redis under a running server:
// posts and history reads answer 503 with Retry-After quickly, and a
// stream answers 200 with a retry line and closes.
func TestRedisDownIsServiceUnavailable(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	s.post(t, "r", "before")
	s.Redis.Kill()

	for _, tt := range []struct {
		name, method, path, body string
	}{
		{name: "post", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"after"}`},
		{name: "post with key", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"again"}`},
		{name: "history", method: http.MethodGet, path: "/rooms/r/messages"},
		{name: "history after", method: http.MethodGet, path: "/rooms/r/messages?after=a-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			resp, body := s.do(t, tt.method, tt.path, tt.body,
				"Content-Type", "application/json", "Idempotency-Key", "k-"+strings.ReplaceAll(tt.name, " ", "-"))
			elapsed := time.Since(start)
			p := wantProblem(t, resp, body, http.StatusServiceUnavailable, typeUnavailable)
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
				t.Fatalf("Retry-After = %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
			}
			if strings.Contains(p.Detail, "127.0.0.1") || strings.Contains(p.Detail, "refused") {
				t.Fatalf("503 detail %q leaks the internal error", p.Detail)
			}
			t.Logf("answered 503 after %v", elapsed)
			// The test client gives up on Redis after 1s; 3s leaves room
			// for a loaded machine and still catches a request that hangs.
			if elapsed > 3*time.Second {
				t.Fatalf("answered after %v, want about a second at most", elapsed)
			}
		})
	}

	t.Run("stream", func(t *testing.T) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/rooms/r/stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := checkedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := readAll(t, resp.Body, 5*time.Second)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream with Redis down: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.HasPrefix(body, []byte("retry: ")) || bytes.Contains(body, []byte("data:")) {
			t.Fatalf("stream with Redis down sent %q, want a retry line and no event", body)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Fatalf("stream closed after %v", elapsed)
		}
	})

	t.Run("readyz", func(t *testing.T) {
		resp, body := s.do(t, http.MethodGet, "/readyz", "")
		wantProblem(t, resp, body, http.StatusServiceUnavailable, typeUnavailable)
		if resp.Header.Get("Retry-After") == "" {
			t.Fatalf("readyz 503 without Retry-After")
		}
	})
	if resp, _ := s.do(t, http.MethodGet, "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz with Redis down = %d, want 200", resp.StatusCode)
	}
}

func TestHealthAndSpec(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	resp, body := s.do(t, http.MethodGet, "/healthz", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, http.MethodGet, "/readyz", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz = %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, http.MethodGet, "/openapi.yaml", "")
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("openapi: ")) {
		t.Fatalf("openapi.yaml = %d %.40q", resp.StatusCode, body)
	}
}

// readAll reads r to its end, failing the test after timeout.
func readAll(t testing.TB, r io.Reader, timeout time.Duration) []byte {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(r)
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("read: %v", res.err)
		}
		return res.data
	case <-time.After(timeout):
		t.Fatalf("body did not end within %v", timeout)
		return nil
	}
}
