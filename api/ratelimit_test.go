package api_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// limiter returns a post limiter on r of one post a minute after a burst.
func limiter(t testing.TB, r *redistest.Server, burst int) *redisscripts.RateLimiter {
	t.Helper()
	return redisscripts.NewRateLimiter(r.Client(), redisscripts.NewKeys("roomcast:"), "post", 1.0/60, burst)
}

func TestRateLimitIsSharedByInstances(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	a := startServer(t, serverConfig{Redis: r, Security: api.Security{Tokens: verifier(t, authConfig()), Posts: limiter(t, r, 3)}})
	b := startServer(t, serverConfig{Redis: r, Security: api.Security{Tokens: verifier(t, authConfig()), Posts: limiter(t, r, 3)}})
	alice := bearer(hs256(t, "alice", nil))
	for i, s := range []*testServer{a, b, a} {
		resp, body := s.postAs(t, "r", `{"text":"x"}`, alice...)
		expectStatus(t, resp, body, http.StatusCreated, "")
		if got, err := strconv.Atoi(resp.Header.Get("RateLimit-Remaining")); err != nil || got != 2-i {
			t.Fatalf("post %d: RateLimit-Remaining = %q, want %d", i, resp.Header.Get("RateLimit-Remaining"), 2-i)
		}
	}
	resp, body := b.postAs(t, "r", `{"text":"over"}`, alice...)
	expectStatus(t, resp, body, http.StatusTooManyRequests, probRateLimited)
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Fatalf("Retry-After = %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
	for name, want := range map[string]string{"RateLimit-Limit": "3", "RateLimit-Remaining": "0"} {
		if got := resp.Header.Get(name); got != want {
			t.Fatalf("%s = %q, want %q", name, got, want)
		}
	}
	if reset, err := strconv.Atoi(resp.Header.Get("RateLimit-Reset")); err != nil || reset < 1 || reset > 180 {
		t.Fatalf("RateLimit-Reset = %q, want 1 to 180 seconds", resp.Header.Get("RateLimit-Reset"))
	}
	resp, body = a.postAs(t, "r", `{"text":"bob"}`, bearer(hs256(t, "bob", nil))...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if n := a.historyLen(t, "r"); n != 4 {
		t.Fatalf("history holds %d messages, want 3 by alice and 1 by bob", n)
	}
	keys, err := r.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(keys, "roomcast:rate:post:user:alice") {
		t.Fatalf("keys %q lack alice's rate limit key", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "roomcast:") {
			t.Fatalf("key %q is outside the key prefix", k)
		}
	}
}

func authConfig() auth.Config { return auth.Config{Secret: testSecret} }

func TestRateLimitByClientIPInOpenMode(t *testing.T) {
	t.Parallel()
	t.Run("trusted proxy", func(t *testing.T) {
		r := redistest.Start(t)
		s := startServer(t, serverConfig{Redis: r, Security: api.Security{
			Posts: limiter(t, r, 2), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		}})
		for range 2 {
			resp, body := s.postAs(t, "r", `{"text":"x"}`, "X-Forwarded-For", "203.0.113.7")
			expectStatus(t, resp, body, http.StatusCreated, "")
		}
		resp, body := s.postAs(t, "r", `{"text":"x"}`, "X-Forwarded-For", "203.0.113.7")
		expectStatus(t, resp, body, http.StatusTooManyRequests, probRateLimited)
		resp, body = s.postAs(t, "r", `{"text":"x"}`, "X-Forwarded-For", "203.0.113.8")
		expectStatus(t, resp, body, http.StatusCreated, "")
		// A client cannot pose as another by prepending to the header: the
		// proxy appends the address it saw.
		resp, body = s.postAs(t, "r", `{"text":"x"}`, "X-Forwarded-For", "198.51.100.1, 203.0.113.7")
		expectStatus(t, resp, body, http.StatusTooManyRequests, probRateLimited)
		if n := s.historyLen(t, "r"); n != 3 {
			t.Fatalf("history holds %d messages, want 3", n)
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		r := redistest.Start(t)
		s := startServer(t, serverConfig{Redis: r, Security: api.Security{Posts: limiter(t, r, 2)}})
		for i, ip := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
			resp, body := s.postAs(t, "r", `{"text":"x"}`, "X-Forwarded-For", ip, "X-Real-IP", ip)
			want := http.StatusCreated
			if i == 2 {
				want = http.StatusTooManyRequests
			}
			expectStatus(t, resp, body, want, "")
		}
	})
}

func TestStreamLimits(t *testing.T) {
	t.Parallel()
	t.Run("per client", func(t *testing.T) {
		s := authServer(t, api.Security{MaxStreamsPerClient: 2})
		alice := bearer(hs256(t, "alice", nil))
		first := s.openStream(t, "/rooms/r/stream", alice...)
		second := s.openStream(t, "/rooms/other/stream", alice...)
		for _, c := range []*sseClient{first, second} {
			if c.resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", c.resp.StatusCode)
			}
			c.awaitOpen()
		}
		resp, body := s.do(t, http.MethodGet, "/rooms/r/stream", "", alice...)
		expectStatus(t, resp, body, http.StatusTooManyRequests, probTooMany)
		if bob := s.openStream(t, "/rooms/r/stream", bearer(hs256(t, "bob", nil))...); bob.resp.StatusCode != http.StatusOK {
			t.Fatalf("another user: status %d, want 200", bob.resp.StatusCode)
		}
		first.Close()
		waitStatus(t, s, "/rooms/r/stream", http.StatusOK, alice...)
	})
	t.Run("per process", func(t *testing.T) {
		s := startServer(t, serverConfig{Security: api.Security{
			MaxStreams: 2, MaxStreamsPerClient: 5, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		}})
		for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
			c := s.openStream(t, "/rooms/r/stream", "X-Forwarded-For", ip)
			if c.resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", c.resp.StatusCode)
			}
			c.awaitOpen()
		}
		// Over the limit, EventSource must still be told to come back: a
		// 200 that advises a retry and ends, never an error status.
		resp, body := s.do(t, http.MethodGet, "/rooms/r/stream", "", "X-Forwarded-For", "203.0.113.3")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "retry: ") ||
			!strings.Contains(string(body), ": server busy, retry shortly") {
			t.Fatalf("stream over MAX_STREAMS: %d %q, want 200 with a retry advice and a closing comment", resp.StatusCode, body)
		}
	})
}

// waitStatus opens path until it answers want, failing after 10s; a
// stream whose client left is released when its handler notices.
func waitStatus(t testing.TB, s *testServer, path string, want int, header ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("GET %s to answer %d", path, want), func() bool {
		c := s.openStream(t, path, header...)
		defer c.Close()
		return c.resp.StatusCode == want
	})
}

func TestBadRoomTouchesNoRateLimit(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s := startServer(t, serverConfig{Redis: r, Security: api.Security{Posts: limiter(t, r, 3)}})
	resp, body := s.do(t, http.MethodPost, "/rooms/a*b/messages", `{"text":"x"}`, "Content-Type", "application/json")
	expectStatus(t, resp, body, http.StatusBadRequest, "urn:roomcast:problem:invalid-room")
	if n := r.Client().DBSize(t.Context()).Val(); n != 0 {
		t.Fatalf("Redis holds %d keys after a request for a bad room, want 0", n)
	}
}
