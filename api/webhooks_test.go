package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"roomcast/broker/chat"
	"roomcast/redisscripts"
)

// deadWebhook is a dead letter as GET /admin/webhooks/dead lists it.
type deadWebhook struct {
	ID         string          `json:"id"`
	Room       string          `json:"room"`
	Type       string          `json:"type"`
	Timestamp  string          `json:"timestamp"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"last_error"`
	LastStatus int             `json:"last_status"`
	DeadAt     string          `json:"dead_at"`
	Data       json.RawMessage `json:"data"`
	RequeuedAt string          `json:"requeued_at"`
}

type deadPage struct {
	Dead []deadWebhook `json:"dead"`
	Next string        `json:"next"`
}

// killWebhooks stores a message in each room, with its message.created
// webhook, and makes each event a dead letter at its first failure, as a
// deliverer does (the server under test delivers none: webhooks are off
// there, and the admin endpoints work without them).
func killWebhooks(t *testing.T, s *testServer, rooms ...string) []chat.Posted {
	t.Helper()
	store := redisscripts.NewStore(s.Redis.Client(), redisscripts.NewKeys("roomcast:"), redisscripts.StoreOptions{
		HistoryMax: 100, IdempotencyTTL: time.Hour, WebhookEvents: []string{chat.EventMessageCreated}})
	var posted []chat.Posted
	for i, room := range rooms {
		p, err := store.Post(t.Context(), chat.Post{Room: room, User: "ann", Text: fmt.Sprint("doomed ", i)})
		if err != nil {
			t.Fatal(err)
		}
		posted = append(posted, p)
		batch, err := store.ClaimOutbox(t.Context(), room, "test", time.Minute, nil, 1)
		if err != nil || !batch.Held || len(batch.Events) != 1 {
			t.Fatalf("claim %s: %+v %v", room, batch, err)
		}
		out, err := store.FailOutbox(t.Context(), room, "test", chat.OutboxFailure{Event: batch.Events[0],
			Error: "status 503 Service Unavailable", Status: 503, Backoff: time.Second, MaxDelay: time.Minute})
		if err != nil || !out.Dead {
			t.Fatalf("fail %s: %+v %v", room, out, err)
		}
	}
	return posted
}

func TestDeadWebhooks(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	posted := killWebhooks(t, s, "a", "b.x", "c")
	key := apiKey(testKey)

	list := func(query string) deadPage {
		t.Helper()
		resp, body := s.do(t, http.MethodGet, "/admin/webhooks/dead"+query, "", key...)
		expectStatus(t, resp, body, http.StatusOK, "")
		var p deadPage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := list("?limit=2")
	if len(first.Dead) != 2 || first.Next == "" {
		t.Fatalf("first page %+v, want 2 and a next", first)
	}
	rest := list("?limit=2&cursor=" + url.QueryEscape(first.Next))
	if len(rest.Dead) != 1 || rest.Next != "" {
		t.Fatalf("second page %+v, want the last one and no next", rest)
	}
	all := append(first.Dead, rest.Dead...)
	byRoom := map[string]deadWebhook{}
	for _, d := range all {
		byRoom[d.Room] = d
	}
	for i, room := range []string{"a", "b.x", "c"} {
		d, ok := byRoom[room]
		if !ok || d.Type != "message.created" || string(d.Data) != string(posted[i].JSON) || d.Attempts != 1 ||
			d.LastStatus != 503 || d.LastError != "status 503 Service Unavailable" || d.DeadAt == "" {
			t.Fatalf("dead letter of %s: %+v, want its message.created after one 503", room, d)
		}
	}
	if whole := list(""); len(whole.Dead) != 3 || whole.Next != "" {
		t.Fatalf("default page %+v, want all 3", whole)
	}

	for _, tc := range []struct {
		name, method, path string
		header             []string
		status             int
		typ                string
	}{
		{name: "list with a token", method: http.MethodGet, path: "/admin/webhooks/dead", header: moderator(t), status: 401, typ: probUnauthorized},
		{name: "list without credentials", method: http.MethodGet, path: "/admin/webhooks/dead", status: 401, typ: probUnauthorized},
		{name: "retry with a token", method: http.MethodPost, path: "/admin/webhooks/dead/" + all[0].ID + "/retry", header: moderator(t), status: 401, typ: probUnauthorized},
		{name: "limit 0", method: http.MethodGet, path: "/admin/webhooks/dead?limit=0", header: key, status: 400, typ: typeInvalidParameter},
		{name: "limit 101", method: http.MethodGet, path: "/admin/webhooks/dead?limit=101", header: key, status: 400, typ: typeInvalidParameter},
		{name: "bad cursor", method: http.MethodGet, path: "/admin/webhooks/dead?cursor=x", header: key, status: 400, typ: typeInvalidCursor},
		{name: "cursor without id", method: http.MethodGet, path: "/admin/webhooks/dead?cursor=12.evt_", header: key, status: 400, typ: typeInvalidCursor},
		{name: "unknown id", method: http.MethodPost, path: "/admin/webhooks/dead/evt_a_1-0/retry", header: key, status: 404, typ: typeNotFound},
		{name: "not an id", method: http.MethodPost, path: "/admin/webhooks/dead/nothing/retry", header: key, status: 404, typ: typeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, tc.method, tc.path, "", tc.header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}
	if left := list(""); len(left.Dead) != 3 {
		t.Fatalf("dead letters after the refusals: %d, want 3", len(left.Dead))
	}

	// Retry b.x's: it leaves the dead letters for the end of its room's
	// outbox, with its id, event time and data.
	d := byRoom["b.x"]
	resp, body := s.do(t, http.MethodPost, "/admin/webhooks/dead/"+d.ID+"/retry", "", key...)
	expectStatus(t, resp, body, http.StatusAccepted, "")
	var requeued deadWebhook
	if err := json.Unmarshal(body, &requeued); err != nil {
		t.Fatal(err)
	}
	if requeued.ID != d.ID || requeued.Room != "b.x" || string(requeued.Data) != string(d.Data) || requeued.RequeuedAt == "" {
		t.Fatalf("retry answered %s, want %+v and when", body, d)
	}
	store := redisscripts.NewStore(s.Redis.Client(), redisscripts.NewKeys("roomcast:"), redisscripts.StoreOptions{HistoryMax: 100})
	batch, err := store.ClaimOutbox(t.Context(), "b.x", "test-2", time.Minute, nil, 10)
	if err != nil || len(batch.Events) != 1 || batch.Events[0].ID != d.ID || string(batch.Events[0].Data) != string(d.Data) ||
		batch.Events[0].Time.Format("2006-01-02T15:04:05.000Z") != d.Timestamp {
		t.Fatalf("b.x's outbox after the retry: %+v %v, want the event again", batch, err)
	}
	if left := list(""); len(left.Dead) != 2 || left.Dead[0].Room == "b.x" || left.Dead[1].Room == "b.x" {
		t.Fatalf("dead letters after the retry: %+v, want a's and c's", left.Dead)
	}
	resp, body = s.do(t, http.MethodPost, "/admin/webhooks/dead/"+d.ID+"/retry", "", key...)
	expectStatus(t, resp, body, http.StatusNotFound, typeNotFound)

	// A dead letter Redis holds garbage for is a 500, without detail.
	if err := s.Redis.Client().HSet(t.Context(), "roomcast:{all}:bucket:dead", byRoom["a"].ID, "{").Err(); err != nil {
		t.Fatal(err)
	}
	resp, body = s.do(t, http.MethodGet, "/admin/webhooks/dead", "", key...)
	expectStatus(t, resp, body, http.StatusInternalServerError, "urn:roomcast:problem:internal")

	s.Redis.Kill()
	resp, body = s.do(t, http.MethodGet, "/admin/webhooks/dead", "", key...)
	expectStatus(t, resp, body, http.StatusServiceUnavailable, typeUnavailable)
	resp, body = s.do(t, http.MethodPost, "/admin/webhooks/dead/"+d.ID+"/retry", "", key...)
	expectStatus(t, resp, body, http.StatusServiceUnavailable, typeUnavailable)
}
