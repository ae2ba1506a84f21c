package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

const (
	typeReadOnly = "urn:roomcast:problem:read-only"
	typeSlowMode = "urn:roomcast:problem:slow-mode"
)

// settingsRecord is the JSON of a room's settings.
type settingsRecord struct {
	Room       string `json:"room"`
	Title      string `json:"title"`
	Topic      string `json:"topic"`
	HistoryMax int    `json:"history_max"`
	TTL        int    `json:"ttl"`
	ReadOnly   bool   `json:"read_only"`
	SlowMode   int    `json:"slow_mode"`
}

func (s *testServer) settings(t testing.TB, room string, header ...string) settingsRecord {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/rooms/"+room, "", header...)
	expectStatus(t, resp, body, http.StatusOK, "")
	var out settingsRecord
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("settings %s: %v", body, err)
	}
	return out
}

func (s *testServer) putSettings(t testing.TB, room, settings string) {
	t.Helper()
	resp, body := s.do(t, http.MethodPut, "/rooms/"+room, settings, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
}

func TestRoomSettings(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	ann := bearer(hs256(t, "ann", nil))
	if got := s.settings(t, "r", ann...); got != (settingsRecord{Room: "r"}) {
		t.Fatalf("settings of a new room = %+v, want the defaults", got)
	}
	resp, body := s.do(t, http.MethodPut, "/rooms/r",
		`{"title":"Lobby","topic":"Say hello","history_max":500,"ttl":3600,"read_only":false,"slow_mode":10}`,
		jsonBody(moderator(t)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	want := settingsRecord{Room: "r", Title: "Lobby", Topic: "Say hello", HistoryMax: 500, TTL: 3600, SlowMode: 10}
	var put settingsRecord
	if err := json.Unmarshal(body, &put); err != nil || put != want {
		t.Fatalf("PUT answered %s, want %+v", body, want)
	}
	if got := s.settings(t, "r", ann...); got != want {
		t.Fatalf("settings = %+v, want %+v", got, want)
	}
	// A replace: what the body leaves out is the default again.
	s.putSettings(t, "r", `{"read_only":true}`)
	if got := s.settings(t, "r", ann...); got != (settingsRecord{Room: "r", ReadOnly: true}) {
		t.Fatalf("settings after a replace = %+v, want only read_only", got)
	}
	s.putSettings(t, "r", `{}`)
	if got := s.settings(t, "r", ann...); got != (settingsRecord{Room: "r"}) {
		t.Fatalf("settings after an empty replace = %+v, want the defaults", got)
	}
}

func TestRoomSettingsRefusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	ann := bearer(hs256(t, "ann", nil))
	elsewhere := bearer(hs256(t, "ann", jwt.MapClaims{"rooms": map[string]any{"read": []string{"x"}}}))
	key := jsonBody(apiKey(testKey)...)
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		typ                      string
	}{
		{name: "read without token", method: http.MethodGet, path: "/rooms/r", status: 401, typ: probUnauthorized},
		{name: "read without read", method: http.MethodGet, path: "/rooms/r", header: elsewhere, status: 403, typ: probForbidden},
		{name: "read bad room", method: http.MethodGet, path: "/rooms/a*b", header: ann, status: 400, typ: typeInvalidRoom},
		{name: "no token", method: http.MethodPut, path: "/rooms/r", body: `{}`, status: 401, typ: probUnauthorized},
		{name: "no moderate", method: http.MethodPut, path: "/rooms/r", body: `{"read_only":true}`, header: jsonBody(ann...), status: 403, typ: probForbidden},
		{name: "moderates another room", method: http.MethodPut, path: "/rooms/s", body: `{}`, header: jsonBody(moderator(t)...), status: 403, typ: probForbidden},
		{name: "bad room", method: http.MethodPut, path: "/rooms/a*b", body: `{}`, header: key, status: 400, typ: typeInvalidRoom},
		{name: "history_max 0", method: http.MethodPut, path: "/rooms/r", body: `{"history_max":0}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "history_max too big", method: http.MethodPut, path: "/rooms/r", body: `{"history_max":1000001}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "ttl 0", method: http.MethodPut, path: "/rooms/r", body: `{"ttl":0}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "ttl over a year", method: http.MethodPut, path: "/rooms/r", body: `{"ttl":31536001}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "slow_mode negative", method: http.MethodPut, path: "/rooms/r", body: `{"slow_mode":-1}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "slow_mode fraction", method: http.MethodPut, path: "/rooms/r", body: `{"slow_mode":1.5}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "slow_mode over a day", method: http.MethodPut, path: "/rooms/r", body: `{"slow_mode":86401}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "read_only a string", method: http.MethodPut, path: "/rooms/r", body: `{"read_only":"yes"}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "null", method: http.MethodPut, path: "/rooms/r", body: `{"title":null}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "empty title", method: http.MethodPut, path: "/rooms/r", body: `{"title":""}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "title too long", method: http.MethodPut, path: "/rooms/r", body: `{"title":"` + strings.Repeat("x", 201) + `"}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "topic with a newline", method: http.MethodPut, path: "/rooms/r", body: `{"topic":"a\nb"}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "unknown field", method: http.MethodPut, path: "/rooms/r", body: `{"private":true}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "not an object", method: http.MethodPut, path: "/rooms/r", body: `[]`, header: key, status: 400, typ: typeInvalidBody},
		{name: "two objects", method: http.MethodPut, path: "/rooms/r", body: `{}{}`, header: key, status: 400, typ: typeInvalidBody},
		{name: "not JSON", method: http.MethodPut, path: "/rooms/r", body: `{}`,
			header: append([]string{"Content-Type", "text/plain"}, apiKey(testKey)...), status: 415, typ: typeUnsupportedMedia},
		{name: "too large", method: http.MethodPut, path: "/rooms/r", body: `{"topic":"` + strings.Repeat("x", 17<<10) + `"}`,
			header: key, status: 413, typ: typeBodyTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, tc.method, tc.path, tc.body, tc.header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}
	keys, err := s.Redis.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("keys after refusals = %q, want none", keys)
	}
}

func TestReadOnlyRoom(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	other := startServer(t, serverConfig{Security: controlSecurity(t), Redis: s.Redis}) // a second instance
	ann := bearer(hs256(t, "ann", nil))
	resp, body := s.postAs(t, "r", `{"text":"before"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")

	s.putSettings(t, "r", `{"read_only":true}`)
	for name, srv := range map[string]*testServer{"same instance": s, "other instance": other} {
		resp, body = srv.postAs(t, "r", `{"text":"refused"}`, append(ann, "Idempotency-Key", "k-"+strings.ReplaceAll(name, " ", "-"))...)
		expectStatus(t, resp, body, http.StatusForbidden, typeReadOnly)
	}
	if n := s.historyLen(t, "r"); n != 1 {
		t.Fatalf("history holds %d messages after refused posts, want 1", n)
	}
	n, err := s.Redis.Client().Exists(t.Context(), "roomcast:{r}:idem:3:ann:k-same-instance", "roomcast:{r}:idem:3:ann:k-other-instance").Result()
	if err != nil || n != 0 {
		t.Fatalf("refused posts stored %d idempotency keys (%v), want none", n, err)
	}
	resp, body = other.postAs(t, "r", `{"text":"from a moderator"}`, moderator(t)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	keyPost(t, other, "r", "from the backend")
	// Batches are the backend's, and not held by the room's settings.
	resp, body = s.do(t, http.MethodPost, "/messages", `{"rooms":["r"],"text":"batch"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusMultiStatus, "")
	if !strings.Contains(string(body), `"status":201`) {
		t.Fatalf("batch into a read-only room = %s, want it stored", body)
	}
	// Other rooms are not read-only.
	resp, body = s.postAs(t, "s", `{"text":"elsewhere"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")

	s.putSettings(t, "r", `{}`)
	resp, body = other.postAs(t, "r", `{"text":"open again"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")
}

func TestSlowMode(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	other := startServer(t, serverConfig{Security: controlSecurity(t), Redis: s.Redis})
	ann := bearer(hs256(t, "ann", nil))
	bob := bearer(hs256(t, "bob", nil))
	s.putSettings(t, "r", `{"slow_mode":60}`)

	resp, body := s.postAs(t, "r", `{"text":"one"}`, append(ann, "Idempotency-Key", "k1")...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	// The retry of a post is its answer again, not a refusal.
	resp, body = other.postAs(t, "r", `{"text":"one"}`, append(ann, "Idempotency-Key", "k1")...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the retry was not a replay")
	}
	resp, body = other.postAs(t, "r", `{"text":"two"}`, ann...)
	expectStatus(t, resp, body, http.StatusTooManyRequests, typeSlowMode)
	if after, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || after < 1 || after > 60 {
		t.Fatalf("Retry-After = %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
	if n := s.historyLen(t, "r"); n != 1 {
		t.Fatalf("history holds %d messages, want 1", n)
	}
	resp, body = s.postAs(t, "r", `{"text":"bob's"}`, bob...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	for range 2 {
		resp, body = s.postAs(t, "r", `{"text":"mod"}`, moderator(t)...)
		expectStatus(t, resp, body, http.StatusCreated, "")
		keyPost(t, s, "r", "backend")
	}
	// Turning slow mode off lets ann post at once.
	s.putSettings(t, "r", `{}`)
	resp, body = s.postAs(t, "r", `{"text":"three"}`, ann...)
	expectStatus(t, resp, body, http.StatusCreated, "")
}
