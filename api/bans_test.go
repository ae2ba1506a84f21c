package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts/redistest"
)

const (
	typeBanned       = "urn:roomcast:problem:banned"
	typeTokenRevoked = "urn:roomcast:problem:token-revoked"
)

// banRecord is the JSON of a ban.
type banRecord struct {
	Room   string     `json:"room"`
	User   string     `json:"user"`
	Until  *time.Time `json:"until"`
	Reason string     `json:"reason"`
	By     string     `json:"by"`
	At     time.Time  `json:"at"`
}

// banEvent is the data of a banned event.
type banEvent struct {
	Room   string     `json:"room"`
	User   string     `json:"user"`
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until"`
}

// controlSecurity verifies testSecret's tokens, with read and write on
// every room by default, and accepts the test API keys.
func controlSecurity(t testing.TB) api.Security {
	t.Helper()
	return api.Security{APIKeys: testAPIKeys(t), Tokens: verifier(t, auth.Config{Secret: testSecret})}
}

// moderator is a token of user mod, who moderates room r only.
func moderator(t testing.TB) []string {
	t.Helper()
	return bearer(hs256(t, "mod", jwt.MapClaims{"rooms": map[string]any{
		"read": []string{"*"}, "write": []string{"*"}, "moderate": []string{"r"}}}))
}

func jsonBody(header ...string) []string {
	return append([]string{"Content-Type", "application/json"}, header...)
}

func (s *testServer) bans(t testing.TB, room string) []banRecord {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/bans", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	var out struct{ Bans []banRecord }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("bans %s: %v", body, err)
	}
	return out.Bans
}

// keyPost posts text to room with a server API key and returns the
// stored message.
func keyPost(t testing.TB, s *testServer, room, text string) message {
	t.Helper()
	resp, body := s.postAs(t, room, `{"text":"`+text+`"}`, apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBanRefusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	ann := bearer(hs256(t, "ann", nil))
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		typ                      string
	}{
		{name: "no token", method: http.MethodPut, path: "/rooms/r/bans/bob", status: 401, typ: probUnauthorized},
		{name: "no moderate", method: http.MethodPut, path: "/rooms/r/bans/bob", header: ann, status: 403, typ: probForbidden},
		{name: "moderates another room", method: http.MethodPut, path: "/rooms/s/bans/bob", header: moderator(t), status: 403, typ: probForbidden},
		{name: "list without moderate", method: http.MethodGet, path: "/rooms/r/bans", header: ann, status: 403, typ: probForbidden},
		{name: "lift without moderate", method: http.MethodDelete, path: "/rooms/r/bans/bob", header: ann, status: 403, typ: probForbidden},
		{name: "bad room", method: http.MethodPut, path: "/rooms/a*b/bans/bob", header: apiKey(testKey), status: 400, typ: typeInvalidRoom},
		{name: "bad user", method: http.MethodPut, path: "/rooms/r/bans/" + strings.Repeat("x", 65), header: apiKey(testKey), status: 400, typ: typeInvalidParameter},
		{name: "until past", method: http.MethodPut, path: "/rooms/r/bans/bob", body: `{"until":"2020-01-01T00:00:00Z"}`,
			header: jsonBody(apiKey(testKey)...), status: 400, typ: typeInvalidBody},
		{name: "until not a time", method: http.MethodPut, path: "/rooms/r/bans/bob", body: `{"until":"tomorrow"}`,
			header: jsonBody(apiKey(testKey)...), status: 400, typ: typeInvalidBody},
		{name: "reason too long", method: http.MethodPut, path: "/rooms/r/bans/bob", body: `{"reason":"` + strings.Repeat("x", 501) + `"}`,
			header: jsonBody(apiKey(testKey)...), status: 400, typ: typeInvalidBody},
		{name: "unknown field", method: http.MethodPut, path: "/rooms/r/bans/bob", body: `{"forever":true}`,
			header: jsonBody(apiKey(testKey)...), status: 400, typ: typeInvalidBody},
		{name: "not JSON", method: http.MethodPut, path: "/rooms/r/bans/bob", body: `{"reason":"x"}`,
			header: append([]string{"Content-Type", "text/plain"}, apiKey(testKey)...), status: 415, typ: typeUnsupportedMedia},
		{name: "lift no ban", method: http.MethodDelete, path: "/rooms/r/bans/bob", header: apiKey(testKey), status: 404, typ: typeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, tc.method, tc.path, tc.body, tc.header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}
	if bans := s.bans(t, "r"); len(bans) != 0 {
		t.Fatalf("bans after refusals = %+v, want none", bans)
	}
}

func TestBanStopsTheUser(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	ann := bearer(hs256(t, "ann", nil))
	first := keyPost(t, s, "r", "before the ban")

	resp, body := s.postAs(t, "r", `{"text":"mine"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	var own message
	if err := json.Unmarshal(body, &own); err != nil {
		t.Fatal(err)
	}
	resp, body = s.do(t, http.MethodPut, "/rooms/r/bans/ann", `{"reason":"spam"}`, jsonBody(moderator(t)...)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	var b banRecord
	if err := json.Unmarshal(body, &b); err != nil || b.Room != "r" || b.User != "ann" || b.By != "mod" ||
		b.Reason != "spam" || b.Until != nil || b.At.IsZero() {
		t.Fatalf("ban = %s, want ann's in r by mod for spam, without end", body)
	}
	resp, body = s.do(t, http.MethodPut, "/rooms/r/bans/ann", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	if bans := s.bans(t, "r"); len(bans) != 1 || bans[0].By != "system" || bans[0].Reason != "" {
		t.Fatalf("bans = %+v, want the replaced ban by system", bans)
	}

	before := s.historyLen(t, "r")
	resp, body = s.postAs(t, "r", `{"text":"hi"}`, ann...)
	expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
	if n := s.historyLen(t, "r"); n != before {
		t.Fatalf("history holds %d messages, want %d: a refused post was stored", n, before)
	}
	resp, body = s.do(t, http.MethodPost, "/rooms/r/typing", `{}`, jsonBody(ann...)...)
	expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
	resp, body = s.do(t, http.MethodPut, "/rooms/r/read", `{"id":"`+first.ID+`"}`, jsonBody(ann...)...)
	expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
	// What ann wrote before the ban she may neither edit nor delete.
	resp, body = s.do(t, http.MethodPatch, "/rooms/r/messages/"+own.ID, `{"text":"edited"}`, jsonBody(ann...)...)
	expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+own.ID, "", ann...)
	expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
	resp, body = s.do(t, http.MethodGet, "/rooms/r/messages/"+own.ID, "", apiKey(testKey)...)
	if expectStatus(t, resp, body, http.StatusOK, ""); !strings.Contains(string(body), `"text":"mine"`) {
		t.Fatalf("ann's message after refused changes: %s, want it unchanged", body)
	}
	for _, path := range []string{"/rooms/r/stream", "/stream?rooms=s,r"} {
		c := s.openStream(t, path, ann...)
		if c.resp.StatusCode != http.StatusForbidden {
			t.Fatalf("GET %s: status %d, want 403", path, c.resp.StatusCode)
		}
		c.Close()
	}
	// Elsewhere ann is free, and so are others in r.
	resp, body = s.postAs(t, "s", `{"text":"hi"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	resp, body = s.postAs(t, "r", `{"text":"hi"}`, bearer(hs256(t, "bob", nil))...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	// A server API key acts for the backend, also as ann.
	resp, body = s.postAs(t, "r", `{"text":"hi","user":"ann"}`, apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")

	resp, body = s.do(t, http.MethodDelete, "/rooms/r/bans/ann", "", moderator(t)...)
	expectStatus(t, resp, body, http.StatusNoContent, "")
	waitFor(t, "the lift to apply", func() bool {
		resp, _ := s.do(t, http.MethodPost, "/rooms/r/typing", `{}`, jsonBody(ann...)...)
		return resp.StatusCode == http.StatusNoContent
	})
	resp, body = s.postAs(t, "r", `{"text":"back"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")
}

func TestBanEnds(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	ann := bearer(hs256(t, "ann", nil))
	until := time.Now().Add(time.Second).UTC()
	resp, body := s.do(t, http.MethodPut, "/rooms/r/bans/ann", `{"until":"`+until.Format(time.RFC3339Nano)+`"}`,
		jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	waitFor(t, "the ban to apply", func() bool {
		resp, _ := s.do(t, http.MethodPost, "/rooms/r/typing", `{}`, jsonBody(ann...)...)
		return resp.StatusCode == http.StatusForbidden
	})
	waitFor(t, "the ban to end", func() bool {
		resp, _ := s.do(t, http.MethodPost, "/rooms/r/typing", `{}`, jsonBody(ann...)...)
		return resp.StatusCode == http.StatusNoContent
	})
	if time.Now().Before(until) {
		t.Fatalf("the ban ended before its until %v", until)
	}
	if bans := s.bans(t, "r"); len(bans) != 0 {
		t.Fatalf("bans after the end = %+v, want none listed", bans)
	}
}

// awaitEnd waits for the stream to end, failing after 10 s; it returns the
// events it saw meanwhile.
func (c *sseClient) awaitEnd() []event {
	c.t.Helper()
	var seen []event
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return seen
			}
			seen = append(seen, ev)
		case <-deadline:
			c.t.Fatalf("stream still open after 10s; saw %+v", seen)
		}
	}
}

// TestBanAcrossInstances: streams on instance A, ban through instance B.
func TestBanAcrossInstances(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverConfig{Security: controlSecurity(t)})
	b := startServer(t, serverConfig{Security: controlSecurity(t), Redis: a.Redis})
	ann := bearer(hs256(t, "ann", nil))
	single := a.openStream(t, "/rooms/r/stream", ann...)
	single.awaitOpen()
	multi := a.openStream(t, "/stream?rooms=r,s", ann...)
	multi.awaitOpen()
	bob := a.openStream(t, "/rooms/r/stream", bearer(hs256(t, "bob", nil))...)
	bob.awaitOpen()

	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	resp, body := b.do(t, http.MethodPut, "/rooms/r/bans/ann",
		`{"reason":"spam","until":"`+until.Format(time.RFC3339)+`"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusCreated, "")

	for name, c := range map[string]*sseClient{"single-room": single, "multi-room": multi} {
		ev := c.next()
		var data banEvent
		if ev.Event != "banned" || json.Unmarshal([]byte(ev.Data), &data) != nil || data.Room != "r" ||
			data.User != "ann" || data.Reason != "spam" || data.Until == nil || !data.Until.Equal(until) {
			t.Fatalf("%s stream: event %+v, want banned from r for spam until %v", name, ev, until)
		}
	}
	if seen := single.awaitEnd(); len(seen) != 1 || seen[0].Comment != "banned from the room" {
		t.Fatalf("single-room stream ended after %+v, want the goodbye only", seen)
	}
	// The multi-room stream carries s, not r; bob's stream of r is untouched.
	keyPost(t, b, "r", "in r")
	keyPost(t, b, "s", "in s")
	if m, _ := multi.nextMessageEvent(); m.Room != "s" {
		t.Fatalf("multi-room stream carried %+v, want only s's message", m)
	}
	if m := bob.nextMessage(); m.Text != "in r" {
		t.Fatalf("bob's stream carried %+v, want r's message", m)
	}
	// Once it has no room left, the multi-room stream ends too.
	resp, body = b.do(t, http.MethodPut, "/rooms/s/bans/ann", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if ev := multi.next(); ev.Event != "banned" || !strings.Contains(ev.Data, `"room":"s"`) {
		t.Fatalf("multi-room stream: event %+v, want banned from s", ev)
	}
	multi.awaitEnd()
	a.expectMetric(t, `roomcast_streams_removed_total{reason="banned"} 3`)
}

// expectMetric fails unless the server's /metrics has the line.
func (s *testServer) expectMetric(t testing.TB, line string) {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/metrics", "")
	expectStatus(t, resp, body, http.StatusOK, "")
	if !strings.Contains(string(body), "\n"+line+"\n") {
		t.Fatalf("/metrics lacks %q", line)
	}
}

func TestRevokeRefusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	key := jsonBody(apiKey(testKey)...)
	for _, tc := range []struct {
		name, body string
		header     []string
		status     int
		typ        string
	}{
		{name: "token, not key", body: `{"jti":"x"}`, header: jsonBody(moderator(t)...), status: 401, typ: probUnauthorized},
		{name: "nothing", body: `{}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "both", body: `{"jti":"x","user":"ann","issued_before":"2030-01-01T00:00:00Z"}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "user without time", body: `{"user":"ann"}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "expired", body: `{"jti":"x","expires_at":"2020-01-01T00:00:00Z"}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "empty jti", body: `{"jti":""}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "unknown field", body: `{"jti":"x","all":true}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "not JSON", body: `{"jti":"x"}`, header: append([]string{"Content-Type", "text/plain"}, apiKey(testKey)...), status: 415, typ: typeUnsupportedMedia},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, http.MethodPost, "/admin/tokens/revoke", tc.body, tc.header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}
	n, err := s.Redis.Client().Keys(t.Context(), "*revoked*").Result()
	if err != nil || len(n) != 0 {
		t.Fatalf("revocation keys after refusals: %v, %v; want none", n, err)
	}
}

// TestRevokeAcrossInstances: streams on instance A, revocations through
// instance B; the token's next request is a 401 on both.
func TestRevokeAcrossInstances(t *testing.T) {
	t.Parallel()
	a := startServer(t, serverConfig{Security: controlSecurity(t)})
	b := startServer(t, serverConfig{Security: controlSecurity(t), Redis: a.Redis})
	issued := time.Now().Add(-time.Minute)
	first := bearer(hs256(t, "ann", jwt.MapClaims{"jti": "t-1", "iat": issued.Unix()}))
	second := bearer(hs256(t, "ann", jwt.MapClaims{"jti": "t-2", "iat": issued.Unix()}))
	later := bearer(hs256(t, "ann", jwt.MapClaims{"jti": "t-3", "iat": time.Now().Unix()}))
	s1 := a.openStream(t, "/rooms/r/stream", first...)
	s1.awaitOpen()
	s2 := a.openStream(t, "/stream?rooms=r,s", second...)
	s2.awaitOpen()

	resp, body := b.do(t, http.MethodPost, "/admin/tokens/revoke", `{"jti":"t-1"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	if ev := s1.next(); ev.Event != "revoked" {
		t.Fatalf("event %+v, want revoked", ev)
	}
	if seen := s1.awaitEnd(); len(seen) != 1 || !strings.Contains(seen[0].Comment, "revoked") {
		t.Fatalf("stream ended after %+v, want the goodbye only", seen)
	}
	for _, s := range []*testServer{a, b} {
		resp, body := s.postAs(t, "r", `{"text":"hi"}`, first...)
		expectStatus(t, resp, body, http.StatusUnauthorized, typeTokenRevoked)
	}
	// The other token still works, and its stream still carries messages.
	resp, body = a.postAs(t, "r", `{"text":"still here"}`, second...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	m, _ := s2.nextMessageEvent()
	if m.Text != "still here" {
		t.Fatalf("stream of the other token carried %+v", m)
	}
	expectRead(t, s2, "r", m.ID, "") // ann's own post moved ann's marker

	resp, body = b.do(t, http.MethodPost, "/admin/tokens/revoke",
		`{"user":"ann","issued_before":"`+issued.Add(30*time.Second).UTC().Format(time.RFC3339)+`"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	if ev := s2.next(); ev.Event != "revoked" {
		t.Fatalf("event %+v, want revoked", ev)
	}
	s2.awaitEnd()
	resp, body = a.postAs(t, "r", `{"text":"hi"}`, second...)
	expectStatus(t, resp, body, http.StatusUnauthorized, typeTokenRevoked)
	c := a.openStream(t, "/rooms/r/stream", second...)
	if c.resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("stream with a revoked token: status %d, want 401", c.resp.StatusCode)
	}
	c.Close()
	// A token issued after issued_before is not revoked.
	resp, body = a.postAs(t, "r", `{"text":"new token"}`, later...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	a.expectMetric(t, `roomcast_streams_removed_total{reason="revoked"} 2`)
}

// TestBanLeavesPresence: a multi-room stream that stops carrying a room
// after a ban no longer counts its user in that room's presence.
func TestBanLeavesPresence(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t), PresenceGrace: 100 * time.Millisecond})
	ann := bearer(hs256(t, "ann", nil))
	multi := s.openStream(t, "/stream?rooms=r,s", ann...)
	multi.awaitOpen()
	present := func(room string) bool {
		resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/presence", "", apiKey(testKey)...)
		expectStatus(t, resp, body, http.StatusOK, "")
		return strings.Contains(string(body), `"user":"ann"`)
	}
	waitFor(t, "ann to be present in r", func() bool { return present("r") })
	resp, body := s.do(t, http.MethodPut, "/rooms/r/bans/ann", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if ev := multi.next(); ev.Event != "banned" {
		t.Fatalf("event %+v, want banned", ev)
	}
	waitFor(t, "ann to leave r's presence", func() bool { return !present("r") })
	if !present("s") {
		t.Fatal("ann left s's presence too")
	}
}

// TestBanChecksCostNoRedisCall: bans and revocations are checked from the
// instance's memory: with some in force, allowed requests run the very
// Redis commands they run without any, and refused ones run none.
func TestBanChecksCostNoRedisCall(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t), CheckInterval: time.Hour})
	ann := bearer(hs256(t, "ann", nil))
	calls := func(requests func()) map[string]int {
		t.Helper()
		s.resetRedisStats(t)
		requests()
		got := s.redisCalls(t)
		delete(got, "config|resetstat")
		delete(got, "info")
		return got
	}
	allowed := func() {
		for range 3 {
			resp, body := s.postAs(t, "r", `{"text":"hi"}`, ann...)
			expectStatus(t, resp, body, http.StatusCreated, "")
		}
	}
	allowed() // the room's first post, which starts it, and the script's first load
	before := calls(allowed)

	resp, body := s.do(t, http.MethodPut, "/rooms/r/bans/eve", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	resp, body = s.do(t, http.MethodPost, "/admin/tokens/revoke", `{"jti":"t-9"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	eve := bearer(hs256(t, "eve", nil))
	revoked := bearer(hs256(t, "ann", jwt.MapClaims{"jti": "t-9"}))
	waitFor(t, "the ban and revocation to apply", func() bool {
		resp, _ := s.postAs(t, "r", `{"text":"hi"}`, eve...)
		resp2, _ := s.postAs(t, "r", `{"text":"hi"}`, revoked...)
		return resp.StatusCode == http.StatusForbidden && resp2.StatusCode == http.StatusUnauthorized
	})
	after := calls(func() {
		allowed()
		for range 3 {
			resp, body := s.postAs(t, "r", `{"text":"hi"}`, eve...)
			expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
			resp, body = s.postAs(t, "r", `{"text":"hi"}`, revoked...)
			expectStatus(t, resp, body, http.StatusUnauthorized, typeTokenRevoked)
		}
	})
	if len(after) != len(before) {
		t.Fatalf("Redis commands with bans in force %v, without %v", after, before)
	}
	for cmd, n := range before {
		if after[cmd] != n {
			t.Fatalf("Redis commands with bans in force %v, without %v", after, before)
		}
	}
}

// TestBansSurviveARedisRestart: after Redis restarts (with its data), each
// instance's control subscription is back, readyz says so, and a ban
// through one instance still ends a stream on the other; the ban set before
// the restart still applies.
func TestBansSurviveARedisRestart(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	a := startServer(t, serverConfig{Redis: rs, Security: controlSecurity(t)})
	b := startServer(t, serverConfig{Redis: rs, Security: controlSecurity(t)})
	resp, body := b.do(t, http.MethodPut, "/rooms/r/bans/bob", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")

	rs.Restart()
	for _, s := range []*testServer{a, b} {
		waitFor(t, "readyz to answer 200 after the restart", func() bool {
			resp, _ := s.do(t, http.MethodGet, "/readyz", "")
			return resp.StatusCode == http.StatusOK
		})
	}
	ann := a.openStream(t, "/rooms/r/stream", bearer(hs256(t, "ann", nil))...)
	ann.awaitOpen()
	resp, body = b.do(t, http.MethodPut, "/rooms/r/bans/ann", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if ev := ann.next(); ev.Event != "banned" {
		t.Fatalf("event %+v, want banned", ev)
	}
	ann.awaitEnd()
	resp, body = a.postAs(t, "r", `{"text":"hi"}`, bearer(hs256(t, "bob", nil))...)
	expectStatus(t, resp, body, http.StatusForbidden, typeBanned)
}

// TestBanEndsAStreamOverHTTP2: a stream its handler serves (HTTP/2, not
// handed to the engine) is told and ended by a ban as well.
func TestBanEndsAStreamOverHTTP2(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{HTTP2: true})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/rooms/r/stream?user=eve", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "retry: ") {
		t.Fatalf("stream began with %q, want a retry line", lines.Text())
	}
	ban, err := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/rooms/r/bans/eve", nil)
	if err != nil {
		t.Fatal(err)
	}
	banned, err := s.Client.Do(ban)
	if err != nil {
		t.Fatal(err)
	}
	banned.Body.Close()
	if banned.StatusCode != http.StatusCreated {
		t.Fatalf("ban: status %d, want 201", banned.StatusCode)
	}
	ended := make(chan []string, 1)
	go func() {
		var seen []string
		for lines.Scan() { // until the stream ends
			seen = append(seen, lines.Text())
		}
		ended <- seen
	}()
	var seen []string
	select {
	case seen = <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open 10s after the ban")
	}
	if !slices.Contains(seen, "event: banned") || !slices.Contains(seen, ": banned from the room") {
		t.Fatalf("stream carried %q, want the banned event and the goodbye", seen)
	}
}
