package api_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"roomcast/api"
)

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{})
	for _, path := range []string{"/healthz", "/rooms/r/messages", "/nope"} {
		resp, _ := s.do(t, http.MethodGet, path, "")
		for name, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Fatalf("GET %s: %s = %q, want %q", path, name, got, want)
			}
		}
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	const origin = "https://chat.example"
	s := authServer(t, api.Security{CORSOrigins: []string{origin}})
	preflight := func(from string) *http.Response {
		resp, _ := s.do(t, http.MethodOptions, "/rooms/r/messages", "",
			"Origin", from, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
		return resp
	}

	resp := preflight(origin)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight status = %d, want 204", resp.StatusCode)
	}
	for name, want := range map[string]string{
		"Access-Control-Allow-Origin":      origin,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET,POST,PUT,PATCH,DELETE", // not HEAD, which is always a 405
		"Access-Control-Allow-Headers":     "Authorization,Content-Type,Idempotency-Key,Last-Event-ID",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Fatalf("preflight %s = %q, want %q", name, got, want)
		}
	}
	for _, from := range []string{"https://evil.example", "https://chat.example.evil", "http://chat.example", "null"} {
		resp := preflight(from)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Fatalf("preflight from %s: Access-Control-Allow-Origin = %q, want none", from, got)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Fatalf("preflight from %s: Access-Control-Allow-Credentials = %q, want none", from, got)
		}
	}

	// A path the spec does not list is a 404 for every method, OPTIONS
	// and preflights included (checkedClient checks the problem).
	for _, header := range [][]string{
		{"Origin", origin, "Access-Control-Request-Method", "POST"},
		{"Origin", origin},
		nil,
	} {
		resp, body := s.do(t, http.MethodOptions, "/rooms/r/nope", "", header...)
		expectStatus(t, resp, body, http.StatusNotFound, "urn:roomcast:problem:not-found")
	}

	// A refused request still tells the listed origin why, readable by
	// its script.
	resp, body := s.postAs(t, "r", `{"text":"x"}`, "Origin", origin)
	expectStatus(t, resp, body, http.StatusUnauthorized, probUnauthorized)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Fatalf("401: Access-Control-Allow-Origin = %q, want %q", got, origin)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") || !strings.Contains(got, "WWW-Authenticate") {
		t.Fatalf("Access-Control-Expose-Headers = %q", got)
	}
	resp, body = s.postAs(t, "r", `{"text":"x"}`, append(bearer(hs256(t, "alice", nil)), "Origin", "https://evil.example")...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("unlisted origin: Access-Control-Allow-Origin = %q, want none", got)
	}
}

// rawRequest writes head (CRLF line ends added) and then body on a new
// connection, and returns the answer, whose head is read within 10s; the
// connection closes when the test ends.
// Not checkedClient: these requests break HTTP framing, which no http.Client can send.
func rawRequest(t testing.TB, s *testServer, head []string, body string) (*http.Response, time.Duration) {
	t.Helper()
	conn := s.dialTCP(t)
	start := time.Now()
	if _, err := fmt.Fprint(conn, strings.Join(head, "\r\n")+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp, time.Since(start)
}

func TestSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	s := startServer(t, serverConfig{Security: api.Security{BodyReadTimeout: timeout}})
	resp, took := rawRequest(t, s, []string{
		"POST /rooms/r/messages HTTP/1.1", "Host: roomcast", "Content-Type: application/json", "Content-Length: 100",
	}, `{"text":`)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status = %d, want 408", resp.StatusCode)
	}
	if took < timeout {
		t.Fatalf("answered after %v, before the %v timeout", took, timeout)
	}
	if n := s.historyLen(t, "r"); n != 0 {
		t.Fatalf("history holds %d messages, want 0", n)
	}
}

func TestStreamsOutliveBodyReadTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Heartbeat: 100 * time.Millisecond, Security: api.Security{BodyReadTimeout: 150 * time.Millisecond}})
	// The post first, on the connection the stream then reuses.
	s.post(t, "r", "before")
	c := s.openStream(t, "/rooms/r/stream")
	c.awaitOpen()
	for pings := 0; pings < 4; {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatalf("stream ended")
			}
			if ev.Comment == "ping" {
				pings++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no heartbeat within 10s")
		}
	}
	want := s.post(t, "r", "after")
	if got := c.nextMessage(); got != want {
		t.Fatalf("streamed %+v, want %+v", got, want)
	}
}

func TestOversizedBodyRefusedUnread(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: api.Security{BodyReadTimeout: time.Second}})
	t.Run("declared length", func(t *testing.T) {
		resp, _ := rawRequest(t, s, []string{
			"POST /rooms/r/messages HTTP/1.1", "Host: roomcast", "Content-Type: application/json", "Content-Length: 104857600",
		}, `{"text":"`)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413", resp.StatusCode)
		}
	})
	t.Run("chunked without end", func(t *testing.T) {
		chunk := strings.Repeat("a", 8192)
		var body strings.Builder
		body.WriteString("9\r\n{\"text\":\"\r\n")
		for range 8 { // 64 KiB, over the 25 KiB cap, and never a last chunk
			fmt.Fprintf(&body, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		resp, _ := rawRequest(t, s, []string{
			"POST /rooms/r/messages HTTP/1.1", "Host: roomcast", "Content-Type: application/json", "Transfer-Encoding: chunked",
		}, body.String())
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413", resp.StatusCode)
		}
	})
	if n := s.historyLen(t, "r"); n != 0 {
		t.Fatalf("history holds %d messages, want 0", n)
	}
}
