package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts/redistest"
)

const (
	testKey      = "server-key-1-of-at-least-32-bytes!!"
	testKeyOther = "server-key-2-of-at-least-32-bytes!!"
)

func apiKey(key string) []string { return []string{"X-API-Key", key} }

func testAPIKeys(t testing.TB) auth.APIKeys {
	t.Helper()
	keys, err := auth.ParseAPIKeys([]string{testKey, testKeyOther})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// lockedBuffer collects log output written by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestAPIKeyPostsAsAnyUser(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{APIKeys: testAPIKeys(t),
		Tokens: verifier(t, auth.Config{Secret: testSecret, DefaultRooms: auth.Rooms{}})})
	for _, tc := range []struct {
		name, key, body, user string
	}{
		{name: "named user", key: testKey, body: `{"text":"hi","user":"ann"}`, user: "ann"},
		{name: "another named user, the second key", key: testKeyOther, body: `{"text":"hi","user":"bob"}`, user: "bob"},
		{name: "no user", key: testKey, body: `{"text":"maintenance at five"}`, user: "system"},
	} {
		resp, body := s.postAs(t, "lobby", tc.body, apiKey(tc.key)...)
		expectStatus(t, resp, body, http.StatusCreated, "")
		var m message
		if err := json.Unmarshal(body, &m); err != nil || m.User != tc.user {
			t.Fatalf("%s: posted %s, want user %s", tc.name, body, tc.user)
		}
	}
	// Reading and streaming any room, which no token of this server may
	// (its default rooms are none).
	resp, body := s.do(t, http.MethodGet, "/rooms/lobby/messages", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	c := s.openStream(t, "/rooms/lobby/stream?user=watcher", apiKey(testKey)...)
	c.awaitOpen()
	resp, body = s.do(t, http.MethodGet, "/rooms/lobby/presence", "", apiKey(testKey)...)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"user":"watcher"`) {
		t.Fatalf("presence: %d %s, want watcher listed", resp.StatusCode, body)
	}
	multi := s.openStream(t, "/stream?rooms=lobby,support", apiKey(testKeyOther)...)
	multi.awaitOpen()
	s.postAs(t, "support", `{"text":"to support"}`, apiKey(testKey)...)
	if m, _ := multi.nextMessageEvent(); m.Text != "to support" {
		t.Fatalf("multi-room stream got %+v", m)
	}
	if got := scrape(t, s, `roomcast_api_key_requests_total{key="2"}`); got != "2" {
		t.Fatalf("requests with key 2 = %s, want 2", got)
	}
}

func TestAPIKeyRefused(t *testing.T) {
	t.Parallel()
	token := hs256(t, "ann", nil)
	for _, tc := range []struct {
		name   string
		sec    api.Security
		header []string
	}{
		{name: "unknown key", sec: api.Security{APIKeys: testAPIKeys(t)}, header: apiKey(testKey + "x")},
		{name: "empty key", sec: api.Security{APIKeys: testAPIKeys(t)}, header: apiKey("")},
		{name: "a key cut short", sec: api.Security{APIKeys: testAPIKeys(t)}, header: apiKey(testKey[:len(testKey)-1])},
		{name: "two keys", sec: api.Security{APIKeys: testAPIKeys(t)}, header: append(apiKey(testKey), apiKey(testKeyOther)...)},
		// Open mode lets anyone post, yet a key it cannot check is no
		// credential to fall back from.
		{name: "a key in open mode without keys", sec: api.Security{}, header: apiKey(testKey)},
		{name: "unknown key beside a good token", header: append(apiKey(testKey+"x"), bearer(token)...),
			sec: api.Security{APIKeys: testAPIKeys(t), Tokens: verifier(t, auth.Config{Secret: testSecret})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverConfig{Security: tc.sec})
			resp, body := s.postAs(t, "lobby", `{"text":"hi","user":"ann"}`, tc.header...)
			expectStatus(t, resp, body, http.StatusUnauthorized, "urn:roomcast:problem:unauthorized")
			if got := resp.Header.Get("WWW-Authenticate"); got != `APIKey realm="roomcast"` {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
			if n := s.historyLen(t, "lobby"); n != 0 {
				t.Fatalf("a refused post stored %d messages", n)
			}
			resp, body = s.do(t, http.MethodGet, "/rooms/lobby/messages", "", tc.header...)
			expectStatus(t, resp, body, http.StatusUnauthorized, "urn:roomcast:problem:unauthorized")
			c := s.openStream(t, "/rooms/lobby/stream", tc.header...)
			if c.resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("stream with %s: %d, want 401", tc.name, c.resp.StatusCode)
			}
			if got := scrape(t, s, `roomcast_api_key_requests_total{key="unknown"}`); got != "3" {
				t.Fatalf("unknown key requests = %s, want 3", got)
			}
		})
	}
}

// TestAPIKeyNotRateLimited: the backend posts for many users; the post
// rate of POST_RATE is per user, and keeps limiting tokens.
func TestAPIKeyNotRateLimited(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s := startServer(t, serverConfig{Redis: r, Security: api.Security{APIKeys: testAPIKeys(t), Posts: limiter(t, r, 1)}})
	for i := range 3 {
		resp, body := s.postAs(t, "lobby", `{"text":"hi","user":"ann"}`, apiKey(testKey)...)
		expectStatus(t, resp, body, http.StatusCreated, "")
		if got := resp.Header.Get("RateLimit-Limit"); got != "" {
			t.Fatalf("post %d with a key has RateLimit-Limit %q", i, got)
		}
	}
	resp, body := s.postAs(t, "lobby", `{"text":"hi"}`)
	expectStatus(t, resp, body, http.StatusCreated, "")
	resp, body = s.postAs(t, "lobby", `{"text":"hi"}`)
	expectStatus(t, resp, body, http.StatusTooManyRequests, "urn:roomcast:problem:rate-limited")
}

func TestAPIKeyNeverLogged(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	s := startServer(t, serverConfig{Security: api.Security{APIKeys: testAPIKeys(t),
		Tokens: verifier(t, auth.Config{Secret: testSecret})},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	s.postAs(t, "lobby", `{"text":"hi"}`, apiKey(testKey)...)
	s.postAs(t, "lobby", `{"text":"hi"}`, apiKey(testKeyOther+"x")...)
	s.openStream(t, "/rooms/lobby/stream", apiKey(testKey+"y")...)
	_, metrics := s.do(t, http.MethodGet, "/metrics", "")
	for _, where := range []string{logs.String(), string(metrics)} {
		if strings.Contains(where, "server-key") {
			t.Fatalf("a key shows in\n%s", where)
		}
	}
	if !strings.Contains(logs.String(), "status=401") {
		t.Fatalf("no request logged:\n%s", logs.String())
	}
}
