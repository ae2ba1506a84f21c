package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/api"
	"roomcast/api/contracttest"
	"roomcast/broker/chat"
)

// checkedClient sends every request of the api tests; each exchange is
// checked against openapi.yaml.
var checkedClient = contracttest.Client("../openapi.yaml")

// TestContractRejectsViolations proves that the contract check can fail:
// a fake server gives answers that break openapi.yaml in one way each.
func TestContractRejectsViolations(t *testing.T) {
	t.Parallel()
	const msg = `{"id":"mjuohs00-1","seq":1,"room":"r","user":"ada","text":"hi","time":"2026-01-01T09:30:00.123Z","version":1}`
	const json, problem = "application/json", "application/problem+json"
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		answer       http.HandlerFunc
		wantErr      string // "" for an exchange the spec allows
	}{
		{name: "valid post", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer: reply(http.StatusCreated, json, msg+"\n")},
		{name: "valid unlisted path", method: http.MethodGet, path: "/nope",
			answer: reply(http.StatusNotFound, problem, `{"type":"urn:roomcast:problem:not-found","title":"Not Found","status":404}`+"\n")},
		{name: "JSON without a final newline", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer: reply(http.StatusCreated, json, msg), wantErr: "does not end with a newline"},
		{name: "problem without a final newline", method: http.MethodGet, path: "/nope",
			answer:  reply(http.StatusNotFound, problem, `{"type":"urn:roomcast:problem:not-found","title":"Not Found","status":404}`),
			wantErr: "does not end with a newline"},
		{name: "valid OPTIONS", method: http.MethodOptions, path: "/healthz",
			answer: reply(http.StatusNoContent, "", "", "Allow", "OPTIONS, GET")},
		{name: "undocumented status", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer:  reply(http.StatusTeapot, problem, `{"type":"urn:roomcast:problem:internal","title":"x","status":418}`),
			wantErr: "status is not supported"},
		{name: "message without seq", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer:  reply(http.StatusCreated, json, strings.Replace(msg, `"seq":1,`, "", 1)),
			wantErr: `"/seq"`},
		{name: "time without milliseconds", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusOK, json, `{"messages":[`+strings.Replace(msg, ".123Z", "Z", 1)+`],"has_more":false}`),
			wantErr: `"/messages/0/time"`},
		{name: "problem type of another status", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusBadRequest, problem, `{"type":"urn:roomcast:problem:internal","title":"x","status":400}`),
			wantErr: `"/type"`},
		{name: "problem status unlike the answer's", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusBadRequest, problem, `{"type":"urn:roomcast:problem:invalid-room","title":"x","status":500}`),
			wantErr: `"/status"`},
		{name: "problem as plain JSON", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusBadRequest, json, `{"type":"urn:roomcast:problem:invalid-room","title":"x","status":400}`),
			wantErr: "Content-Type has unexpected value"},
		{name: "503 without Retry-After", method: http.MethodGet, path: "/readyz",
			answer:  reply(http.StatusServiceUnavailable, problem, `{"type":"urn:roomcast:problem:unavailable","title":"x","status":503}`),
			wantErr: "Retry-After"},
		{name: "no X-Request-Id", method: http.MethodGet, path: "/healthz",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", json)
				_, _ = io.WriteString(w, `{"status":"ok"}`)
			},
			wantErr: "X-Request-Id"},
		{name: "bad room accepted", method: http.MethodPost, path: "/rooms/a*b/messages", body: `{"text":"hi"}`,
			answer: reply(http.StatusCreated, json, msg), wantErr: "the spec rejects the request"},
		{name: "unknown member accepted", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi","x":1}`,
			answer: reply(http.StatusCreated, json, msg), wantErr: "the spec rejects the request"},
		{name: "stream without X-Accel-Buffering", method: http.MethodGet, path: "/rooms/r/stream",
			answer:  reply(http.StatusOK, "text/event-stream", "retry: 1000\n\n", "Cache-Control", "no-cache"),
			wantErr: "X-Accel-Buffering"},
		{name: "event stream where JSON is documented", method: http.MethodGet, path: "/healthz",
			answer:  reply(http.StatusOK, "text/event-stream", ": ping\n\n"),
			wantErr: "not documented as an event stream"},
		{name: "unlisted path answered", method: http.MethodGet, path: "/nope",
			answer: reply(http.StatusOK, json, `{}`), wantErr: "must be 404"},
		{name: "unlisted path with another problem type", method: http.MethodGet, path: "/nope",
			answer:  reply(http.StatusNotFound, problem, `{"type":"urn:roomcast:problem:internal","title":"x","status":404}`),
			wantErr: `"/type"`},
		{name: "unlisted method answered", method: http.MethodPut, path: "/healthz",
			answer: reply(http.StatusOK, json, `{"status":"ok"}`), wantErr: "must be 405"},
		{name: "OPTIONS without Allow", method: http.MethodOptions, path: "/healthz",
			answer: reply(http.StatusNoContent, "", ""), wantErr: "want 204 with the allowed methods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.answer)
			defer srv.Close()
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", json)
			}
			resp, err := checkedClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			t.Log(err)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("the check failed a valid exchange: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("the check passed an exchange that breaks the spec")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// reply answers with status, a Content-Type (none if ""), body, an
// X-Request-Id and extra header pairs.
func reply(status int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "test")
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// TestContractServerAnswers provokes each documented answer that a test can
// cheaply cause. s.do checks every one against the spec, so this test fails
// where server and spec disagree, and the status checks here make sure that
// each documented answer really was seen.
func TestContractServerAnswers(t *testing.T) {
	t.Parallel()
	type request struct {
		name, method, path, body string
		header                   []string
		want                     int
	}
	run := func(t *testing.T, s *testServer, reqs []request) {
		t.Helper()
		for _, r := range reqs {
			if resp, body := s.do(t, r.method, r.path, r.body, r.header...); resp.StatusCode != r.want {
				t.Fatalf("%s: status = %d, want %d; body %s", r.name, resp.StatusCode, r.want, body)
			}
		}
	}
	const post, get = http.MethodPost, http.MethodGet
	const protobufMetrics = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
	jsonBody := []string{"Content-Type", "application/json"}

	t.Run("open", func(t *testing.T) {
		s := startServer(t, serverConfig{MaxMessageBytes: 16})
		m := s.post(t, "r", "one")
		idem := append([]string{"Idempotency-Key", "k1"}, jsonBody...)
		_, page := s.do(t, get, "/", "")
		run(t, s, []request{
			{name: "post", method: post, path: "/rooms/r/messages", body: `{"text":"two","user":"ada"}`, header: idem, want: 201},
			{name: "replay", method: post, path: "/rooms/r/messages", body: `{"text":"two","user":"ada"}`, header: idem, want: 201},
			{name: "idempotency conflict", method: post, path: "/rooms/r/messages", body: `{"text":"three","user":"ada"}`, header: idem, want: 422},
			{name: "bad body", method: post, path: "/rooms/r/messages", body: `{"text":""}`, header: jsonBody, want: 400},
			{name: "empty room", method: post, path: "/rooms//messages", body: `{"text":"a"}`, header: jsonBody, want: 400},
			{name: "not JSON", method: post, path: "/rooms/r/messages", body: "hi", header: []string{"Content-Type", "text/plain"}, want: 415},
			{name: "too large", method: post, path: "/rooms/r/messages", body: `{"text":"` + strings.Repeat("a", 6000) + `"}`, header: jsonBody, want: 413},
			{name: "history", method: get, path: "/rooms/r/messages?limit=1", want: 200},
			{name: "history before", method: get, path: "/rooms/r/messages?before=" + m.ID, want: 200},
			{name: "history reset", method: get, path: "/rooms/r/messages?after=zz-1", want: 200},
			{name: "bad cursor", method: get, path: "/rooms/r/messages?before=x", want: 400},
			{name: "bad resume point", method: get, path: "/rooms/r/stream", header: []string{"Last-Event-ID", "x"}, want: 400},
			{name: "healthz", method: get, path: "/healthz", want: 200},
			{name: "readyz", method: get, path: "/readyz", want: 200},
			{name: "openapi", method: get, path: "/openapi.yaml", want: 200},
			{name: "metrics", method: get, path: "/metrics", want: 200},
			{name: "metrics as protobuf", method: get, path: "/metrics", header: []string{"Accept", protobufMetrics}, want: 200},
			{name: "page unchanged", method: get, path: "/", header: []string{"If-None-Match", pageETag(t, s, page)}, want: 304},
			{name: "asset", method: get, path: "/assets/app.js", want: 200},
			{name: "ranges ignored", method: get, path: "/assets/style.css", header: []string{"Range", "bytes=0-9"}, want: 200},
			{name: "missing asset", method: get, path: "/assets/nope.js", want: 404},
			{name: "ban", method: http.MethodPut, path: "/rooms/r/bans/eve", body: `{"reason":"spam"}`, header: jsonBody, want: 201},
			{name: "bans", method: get, path: "/rooms/r/bans", want: 200},
			{name: "lift", method: http.MethodDelete, path: "/rooms/r/bans/eve", want: 204},
			{name: "lift again", method: http.MethodDelete, path: "/rooms/r/bans/eve", want: 404},
			{name: "revoke", method: post, path: "/admin/tokens/revoke", body: `{"jti":"t-1"}`, header: jsonBody, want: 200},
			{name: "settings", method: http.MethodPut, path: "/rooms/r", body: `{"title":"R"}`, header: jsonBody, want: 200},
			{name: "bad settings", method: http.MethodPut, path: "/rooms/r", body: `{"ttl":0}`, header: jsonBody, want: 400},
			{name: "read settings", method: get, path: "/rooms/r", want: 200},
			{name: "directory", method: get, path: "/rooms?limit=1", want: 200},
			{name: "bad directory limit", method: get, path: "/rooms?limit=0", want: 400},
			{name: "unknown path", method: get, path: "/rooms/r/nope", want: 404},
			{name: "unknown method", method: http.MethodDelete, path: "/rooms/r/messages", want: 405},
			{name: "HEAD", method: http.MethodHead, path: "/healthz", want: 405},
			{name: "OPTIONS", method: http.MethodOptions, path: "/rooms/r/messages", want: 204},
		})
		c := s.openStream(t, "/rooms/r/stream?last_event_id="+m.ID)
		c.awaitOpen()
		c.nextMessage()

		s.Redis.Kill()
		run(t, s, []request{
			{name: "post without Redis", method: post, path: "/rooms/r/messages", body: `{"text":"a"}`, header: jsonBody, want: 503},
			{name: "history without Redis", method: get, path: "/rooms/r/messages", want: 503},
		})
		waitFor(t, "readyz to answer 503 after Redis died", func() bool {
			resp, _ := s.do(t, get, "/readyz", "")
			return resp.StatusCode == http.StatusServiceUnavailable
		})
	})

	t.Run("secured", func(t *testing.T) {
		posts := &countingLimiter{allow: 2}
		s := authServer(t, api.Security{Posts: posts, MaxStreamsPerClient: 1})
		alice := bearer(hs256(t, "alice", nil))
		run(t, s, []request{
			{name: "no token", method: get, path: "/rooms/r/messages", want: 401},
			{name: "post", method: post, path: "/rooms/r/messages", body: `{"text":"hi"}`, header: append(alice, jsonBody...), want: 201},
			{name: "other user", method: post, path: "/rooms/r/messages", body: `{"text":"hi","user":"bob"}`, header: append(alice, jsonBody...), want: 403},
			{name: "over the rate", method: post, path: "/rooms/r/messages", body: `{"text":"hi"}`, header: append(alice, jsonBody...), want: 429},
		})
		c := s.openStream(t, "/rooms/r/stream?access_token="+hs256(t, "alice", nil))
		c.awaitOpen()
		run(t, s, []request{{name: "second stream", method: get, path: "/rooms/r/stream", header: alice, want: 429}})
	})

	// Bodies that no http.Client sends: the answer is read off a bare
	// connection and checked like any other.
	t.Run("raw", func(t *testing.T) {
		s := startServer(t, serverConfig{Security: api.Security{BodyReadTimeout: 200 * time.Millisecond}})
		for _, tc := range []struct {
			name   string
			length string // the declared Content-Length
			want   int
		}{
			{name: "body too slow", length: "100", want: http.StatusRequestTimeout},
			{name: "declared too large", length: "104857600", want: http.StatusRequestEntityTooLarge},
		} {
			const sent = `{"text":`
			resp, _ := rawRequest(t, s, []string{"POST /rooms/r/messages HTTP/1.1", "Host: roomcast",
				"Content-Type: application/json", "Content-Length: " + tc.length}, sent)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("%s: read answer: %v", tc.name, err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: status = %d, want %d; body %s", tc.name, resp.StatusCode, tc.want, body)
			}
			req, err := http.NewRequestWithContext(t.Context(), post, s.URL+"/rooms/r/messages", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			c, err := contracttest.Load("../openapi.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Check(t.Context(), req, []byte(sent), resp, body); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
	})
}

// pageETag is the ETag of the chat page answer page was read from.
func pageETag(t testing.TB, s *testServer, page []byte) string {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/", "")
	if etag := resp.Header.Get("ETag"); etag != "" && bytes.Equal(body, page) {
		return etag
	}
	t.Fatalf("the page has no stable ETag")
	return ""
}

// countingLimiter allows the first allow posts and refuses the rest.
type countingLimiter struct {
	mu    sync.Mutex
	allow int
}

func (l *countingLimiter) Allow(context.Context, string) (chat.RateDecision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allow--
	if l.allow < 0 {
		return chat.RateDecision{Limit: 2, RetryAfter: time.Second, ResetAfter: 2 * time.Second}, nil
	}
	return chat.RateDecision{Allowed: true, Limit: 2, Remaining: l.allow, ResetAfter: time.Second}, nil
}
