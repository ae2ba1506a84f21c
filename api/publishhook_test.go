package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/api"
	"roomcast/api/app"
	"roomcast/api/contracttest"
	"roomcast/broker/webhook/signature"
	"roomcast/broker/webhook/webhooktest"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is the backend's publish hook: it answers by the text it is
// asked about, and records every question as it came.
type hookReceiver struct {
	URL      string
	mu       sync.Mutex
	asked    []webhooktest.Request
	dropNext bool          // close the next connection without an answer
	failNext bool          // answer the next question with a 500
	stall    chan struct{} // "stall" waits on it
}

func startHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{stall: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		close(r.stall)
		srv.Close()
	})
	r.URL = srv.URL
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	drop, fail := r.dropNext, r.failNext
	r.dropNext, r.failNext = false, false
	r.asked = append(r.asked, webhooktest.Request{ID: req.Header.Get(signature.HeaderID),
		Timestamp: req.Header.Get(signature.HeaderTimestamp), Signature: req.Header.Get(signature.HeaderSignature), Body: string(body)})
	r.mu.Unlock()
	if drop {
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
		return
	}
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var q struct {
		Type string
		Data struct{ Text string }
	}
	_ = json.Unmarshal(body, &q)
	answer := map[string]string{
		"accept":      `{"action":"accept"}`,
		"rewrite":     `{"action":"accept","text":"[redacted]","metadata":{"flagged":true}}`,
		"reject":      `{"action":"reject","reason":"no spam, please"}`,
		"garbage":     `yes`,
		"unknown":     `{"action":"maybe"}`,
		"bad rewrite": `{"action":"accept","text":"   "}`,
	}[q.Data.Text]
	switch q.Data.Text {
	case "stall":
		select {
		case <-r.stall:
		case <-req.Context().Done():
		}
		return
	case "error":
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, answer)
}

func (r *hookReceiver) questions() []webhooktest.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhooktest.Request(nil), r.asked...)
}

func hookServer(t *testing.T, r *hookReceiver, acceptOnError bool, rooms ...string) *testServer {
	secret, err := signature.ParseSecret(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	if rooms == nil {
		rooms = []string{"*"}
	}
	return startServer(t, serverConfig{
		Security:    api.Security{APIKeys: testAPIKeys(t)},
		PublishHook: app.PublishHook{URL: r.URL, Secret: secret, Timeout: 2 * time.Second, AcceptOnError: acceptOnError, Rooms: rooms},
	})
}

func TestPublishHookDecides(t *testing.T) {
	t.Parallel()
	r := startHookReceiver(t)
	s := hookServer(t, r, false)

	resp, body := s.postAs(t, "h", `{"text":"accept","user":"ann","metadata":{"a":1}}`)
	expectStatus(t, resp, body, http.StatusCreated, "")
	resp, body = s.postAs(t, "h", `{"text":"rewrite","user":"ann"}`)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if !strings.Contains(string(body), `"text":"[redacted]"`) || !strings.Contains(string(body), `"metadata":{"flagged":true}`) {
		t.Fatalf("rewritten post stored as %s", body)
	}
	resp, body = s.postAs(t, "h", `{"text":"reject","user":"ann"}`)
	expectStatus(t, resp, body, http.StatusUnprocessableEntity, "urn:roomcast:problem:rejected")
	if p := problemOf(t, resp, body); p.Detail != "no spam, please" {
		t.Fatalf("rejection detail %q, want the hook's reason", p.Detail)
	}
	for _, text := range []string{"stall", "garbage", "unknown", "bad rewrite", "error"} {
		resp, body = s.postAs(t, "h", `{"text":"`+text+`","user":"ann"}`)
		expectStatus(t, resp, body, http.StatusServiceUnavailable, "urn:roomcast:problem:unavailable")
		if resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: 503 without Retry-After", text)
		}
	}
	if n := s.historyLen(t, "h"); n != 2 {
		t.Fatalf("h holds %d messages, want 2: refused posts store nothing", n)
	}

	// The backend's own posts are not screened.
	resp, body = s.postAs(t, "h", `{"text":"reject"}`, apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")

	asked := r.questions()
	if len(asked) != 8 {
		t.Fatalf("the hook was asked %d times, want 8", len(asked))
	}
	var first struct {
		Type string
		Data map[string]any
	}
	if err := json.Unmarshal([]byte(asked[0].Body), &first); err != nil || first.Type != "message.publishing" ||
		first.Data["room"] != "h" || first.Data["user"] != "ann" || first.Data["text"] != "accept" ||
		first.Data["metadata"].(map[string]any)["a"] != float64(1) {
		t.Fatalf("first question %s", asked[0].Body)
	}
	contract, err := contracttest.Load("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range asked {
		req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(q.Body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(signature.HeaderID, q.ID)
		req.Header.Set(signature.HeaderTimestamp, q.Timestamp)
		req.Header.Set(signature.HeaderSignature, q.Signature)
		if err := contract.CheckWebhook(t.Context(), req, []byte(q.Body)); err != nil {
			t.Fatalf("question %s: %v", q.Body, err)
		}
	}
	webhooktest.VerifyWithNPM(t, hookSecret, asked)

	resp, body = s.do(t, http.MethodGet, "/metrics", "")
	for _, series := range []string{`outcome="accepted"} 1`, `outcome="rewritten"} 1`, `outcome="rejected"} 1`, `outcome="failed"} 5`} {
		if !strings.Contains(string(body), "roomcast_publish_hook_duration_seconds_count{"+series) {
			t.Fatalf("/metrics lacks the hook's %s", series)
		}
	}
}

func TestPublishHookOnErrorAccept(t *testing.T) {
	t.Parallel()
	r := startHookReceiver(t)
	s := hookServer(t, r, true)
	resp, body := s.postAs(t, "h", `{"text":"stall"}`)
	expectStatus(t, resp, body, http.StatusCreated, "")
	resp, body = s.postAs(t, "h", `{"text":"reject"}`)
	expectStatus(t, resp, body, http.StatusUnprocessableEntity, "urn:roomcast:problem:rejected")
}

// TestPublishHookRetriesALostConnection: a connection that fails before
// any answer is tried again within the timeout.
func TestPublishHookRetriesALostConnection(t *testing.T) {
	t.Parallel()
	r := startHookReceiver(t)
	s := hookServer(t, r, false)
	r.mu.Lock()
	r.dropNext = true
	r.mu.Unlock()
	resp, body := s.postAs(t, "h", `{"text":"accept"}`)
	expectStatus(t, resp, body, http.StatusCreated, "")
	if n := len(r.questions()); n != 2 {
		t.Fatalf("asked %d times, want 2: the dropped one and its retry", n)
	}
}

func TestPublishHookRooms(t *testing.T) {
	t.Parallel()
	r := startHookReceiver(t)
	s := hookServer(t, r, false, "support-*", "lobby")
	for room, want := range map[string]int{"support-1": http.StatusUnprocessableEntity, "lobby": http.StatusUnprocessableEntity,
		"lobby2": http.StatusCreated, "other": http.StatusCreated} {
		resp, body := s.postAs(t, room, `{"text":"reject"}`)
		expectStatus(t, resp, body, want, "")
	}
}

// TestPublishHookScreensEdits: an edit is asked about with edit_of, and
// stored as the hook answers.
func TestPublishHookScreensEdits(t *testing.T) {
	t.Parallel()
	r := startHookReceiver(t)
	s := hookServer(t, r, false)
	resp, body := s.postAs(t, "e", `{"text":"accept","user":"ann","metadata":{"a":1}}`)
	expectStatus(t, resp, body, http.StatusCreated, "")
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	path := "/rooms/e/messages/" + m.ID
	jsonType := []string{"Content-Type", "application/json"}
	resp, body = s.do(t, http.MethodPatch, path, `{"text":"reject","user":"ann"}`, jsonType...)
	expectStatus(t, resp, body, http.StatusUnprocessableEntity, "urn:roomcast:problem:rejected")
	resp, body = s.do(t, http.MethodPatch, path, `{"text":"rewrite","user":"ann"}`, jsonType...)
	expectStatus(t, resp, body, http.StatusOK, "")
	if !strings.Contains(string(body), `"text":"[redacted]"`) || !strings.Contains(string(body), `"metadata":{"flagged":true}`) ||
		!strings.Contains(string(body), `"version":2`) {
		t.Fatalf("the rewritten edit stored as %s", body)
	}
	asked := r.questions()
	var q struct{ Data map[string]any }
	if err := json.Unmarshal([]byte(asked[len(asked)-1].Body), &q); err != nil || q.Data["edit_of"] != m.ID {
		t.Fatalf("the edit's question %s, want edit_of %s", asked[len(asked)-1].Body, m.ID)
	}
}

// TestPublishHookKeepsRetriesIdempotent: the key is checked against what
// the user sent, so a retry the hook rewrites again is a replay, not a
// conflict; and a post stored as sent while the hook was down is replayed
// once the hook rewrites it.
func TestPublishHookKeepsRetriesIdempotent(t *testing.T) {
	t.Parallel()
	r := startHookReceiver(t)
	s := hookServer(t, r, true)
	key := []string{"Idempotency-Key", "k-1"}
	r.mu.Lock()
	r.failNext = true // stored as sent: the hook gave no answer
	r.mu.Unlock()
	resp, first := s.postAs(t, "i", `{"text":"rewrite","user":"ann"}`, key...)
	expectStatus(t, resp, first, http.StatusCreated, "")
	resp, again := s.postAs(t, "i", `{"text":"rewrite","user":"ann"}`, key...)
	expectStatus(t, resp, again, http.StatusCreated, "")
	if resp.Header.Get("Idempotent-Replayed") != "true" || string(again) != string(first) {
		t.Fatalf("retry answered %s (replayed %q), want the first answer %s", again, resp.Header.Get("Idempotent-Replayed"), first)
	}
	var m message
	if err := json.Unmarshal(first, &m); err != nil {
		t.Fatal(err)
	}
	edit := []string{"Content-Type", "application/json", "Idempotency-Key", "k-2"}
	r.mu.Lock()
	r.failNext = true
	r.mu.Unlock()
	resp, edited := s.do(t, http.MethodPatch, "/rooms/i/messages/"+m.ID, `{"text":"rewrite","user":"ann"}`, edit...)
	expectStatus(t, resp, edited, http.StatusOK, "")
	resp, again = s.do(t, http.MethodPatch, "/rooms/i/messages/"+m.ID, `{"text":"rewrite","user":"ann"}`, edit...)
	expectStatus(t, resp, again, http.StatusOK, "")
	if resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("edit retry answered %s, want a replay", again)
	}
	if n := s.historyLen(t, "i"); n != 1 {
		t.Fatalf("i holds %d messages, want 1", n)
	}
}
