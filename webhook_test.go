package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"roomcast/api/contracttest"
	"roomcast/broker/webhook/webhooktest"
	"roomcast/redisscripts/redistest"
)

// webhookSecret is whsec_ and the base64 of 32 bytes.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/2ihN9d+oBI="

// webhookReceiver records the webhooks it gets, checked against
// openapi.yaml, and answers each with what answer says (nil: 204).
type webhookReceiver struct {
	*httptest.Server
	t      testing.TB
	answer func(r webhooktest.Request) (status int, stall time.Duration)

	mu     sync.Mutex
	got    []webhooktest.Request
	bad    []string // contract violations
	notify chan struct{}
}

func newWebhookReceiver(t testing.TB, answer func(webhooktest.Request) (int, time.Duration)) *webhookReceiver {
	contract, err := contracttest.Load("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rc := &webhookReceiver{t: t, answer: answer, notify: make(chan struct{}, 1)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := webhooktest.Request{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
			Signature: r.Header.Get("webhook-signature"), Body: string(body)}
		err := contract.CheckWebhook(r.Context(), r, body)
		status, stall := http.StatusNoContent, time.Duration(0)
		if rc.answer != nil {
			status, stall = rc.answer(got)
		}
		if stall > 0 {
			select {
			case <-time.After(stall): // a receiver that takes its time
			case <-r.Context().Done():
				return
			}
		}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		if err != nil {
			rc.bad = append(rc.bad, err.Error())
		}
		rc.mu.Unlock()
		select {
		case rc.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *webhookReceiver) requests() []webhooktest.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		rc.t.Errorf("webhooks that openapi.yaml does not allow: %q", rc.bad)
	}
	return append([]webhooktest.Request(nil), rc.got...)
}

// await waits up to within until cond holds for the requests so far.
func (rc *webhookReceiver) await(t testing.TB, within time.Duration, what string, cond func([]webhooktest.Request) bool) []webhooktest.Request {
	t.Helper()
	deadline := time.After(within)
	for {
		got := rc.requests()
		if cond(got) {
			return got
		}
		select {
		case <-rc.notify:
		case <-deadline:
			t.Fatalf("no %s within %s; %d requests", what, within, len(got))
		}
	}
}

// webhookBody is a webhook's body.
type webhookBody struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func TestWebhookMessageCreated(t *testing.T) {
	redis := redistest.Start(t)
	rc := newWebhookReceiver(t, nil)
	in := startRun(t, "REDIS_URL="+redis.URL(), "WEBHOOK_URL="+rc.URL+"/hook?token=x", "WEBHOOK_SECRET="+webhookSecret)
	var posted []string
	for i := range 3 {
		posted = append(posted, string(in.postMessage(t, "lobby.main", fmt.Sprint("hello ", i))))
	}
	got := rc.await(t, 10*time.Second, "3 webhooks", func(g []webhooktest.Request) bool { return len(g) >= 3 })
	for i, r := range got {
		var b webhookBody
		if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != "message.created" || string(b.Data) != posted[i] {
			t.Fatalf("webhook %d = %s, want message.created of %s", i, r.Body, posted[i])
		}
	}
	webhooktest.VerifyWithNPM(t, webhookSecret, got)
}

// TestWebhookPresenceAfterKill9: a user's stream on process A makes
// room.occupied and member.joined; A is killed with kill -9, and process B,
// which no stream of the room ever reached, sweeps A's expired entries and
// sends member.left and room.vacated, within the presence expiry.
func TestWebhookPresenceAfterKill9(t *testing.T) {
	redis := redistest.Start(t)
	rc := newWebhookReceiver(t, nil)
	env := []string{"WEBHOOK_URL=" + rc.URL + "/hooks", "WEBHOOK_SECRET=" + webhookSecret, "WEBHOOK_LEASE=1s",
		"WEBHOOK_TIMEOUT=500ms", "PRESENCE_GRACE=200ms", "HEARTBEAT_INTERVAL=1s"}
	a := startProcess(t, redis.URL(), env...)
	startProcess(t, redis.URL(), env...)

	types := func(g []webhooktest.Request) []string {
		var out []string
		for _, r := range g {
			var b webhookBody
			if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Type+" "+string(b.Data))
		}
		return out
	}
	has := func(want ...string) func([]webhooktest.Request) bool {
		return func(g []webhooktest.Request) bool {
			got := types(g)
			for _, w := range want {
				if !slices.Contains(got, w) {
					return false
				}
			}
			return true
		}
	}
	(&instance{url: a.url}).openLines(t, "/rooms/lobby/stream?user=ann")
	rc.await(t, 10*time.Second, "room.occupied and member.joined",
		has(`room.occupied {"room":"lobby"}`, `member.joined {"room":"lobby","user":"ann"}`))

	a.kill9(t)
	killed := time.Now()
	// Expiry: HEARTBEAT_INTERVAL + PRESENCE_GRACE after A's last report,
	// found by B's next sweep (HEARTBEAT_INTERVAL), then sent, after
	// WEBHOOK_LEASE if A held the room's outbox; 10s leaves room for a
	// loaded machine.
	got := rc.await(t, 10*time.Second, "member.left and room.vacated",
		has(`member.left {"room":"lobby","user":"ann"}`, `room.vacated {"room":"lobby"}`))
	t.Logf("member.left and room.vacated %v after the kill", time.Since(killed).Round(time.Millisecond))
	want := []string{`room.occupied {"room":"lobby"}`, `member.joined {"room":"lobby","user":"ann"}`,
		`member.left {"room":"lobby","user":"ann"}`, `room.vacated {"room":"lobby"}`}
	if g := slices.Compact(types(got)); !slices.Equal(g, want) {
		t.Fatalf("webhooks %q, want %q in order", g, want)
	}
	webhooktest.VerifyWithNPM(t, webhookSecret, got)
}

// TestWebhookMessageEditedDeleted: an edit and a delete each send their
// event with the new version of the message, after its message.created.
func TestWebhookMessageEditedDeleted(t *testing.T) {
	redis := redistest.Start(t)
	rc := newWebhookReceiver(t, nil)
	in := startRun(t, "REDIS_URL="+redis.URL(), "WEBHOOK_URL="+rc.URL+"/hooks", "WEBHOOK_SECRET="+webhookSecret)
	posted := in.postMessage(t, "lobby", "hello")
	var m struct{ ID string }
	if err := json.Unmarshal(posted, &m); err != nil {
		t.Fatal(err)
	}
	resp, edited := in.request(t, http.MethodPatch, "/rooms/lobby/messages/"+m.ID, `{"text":"hello again"}`, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH: %d %s", resp.StatusCode, edited)
	}
	resp, deleted := in.request(t, http.MethodDelete, "/rooms/lobby/messages/"+m.ID, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, deleted)
	}
	got := rc.await(t, 10*time.Second, "3 webhooks", func(g []webhooktest.Request) bool { return len(g) >= 3 })
	want := []webhookBody{{Type: "message.created", Data: posted}, {Type: "message.edited", Data: bytes.TrimSuffix(edited, []byte("\n"))},
		{Type: "message.deleted", Data: bytes.TrimSuffix(deleted, []byte("\n"))}}
	for i, r := range got[:3] {
		var b webhookBody
		if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != want[i].Type || string(b.Data) != string(want[i].Data) {
			t.Fatalf("webhook %d = %s, want %s of %s", i, r.Body, want[i].Type, want[i].Data)
		}
	}
	webhooktest.VerifyWithNPM(t, webhookSecret, got)
}
