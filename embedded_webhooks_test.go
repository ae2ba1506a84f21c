package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"roomcast/broker/webhook/webhooktest"
)

// TestEmbeddedRedisWebhooks runs the webhook scripts on the embedded
// default (miniredis runs gopher-lua): a post, its edit and delete, and a
// stream's presence from occupied to vacated reach the receiver in order,
// signed; the dead letters list is empty.
func TestEmbeddedRedisWebhooks(t *testing.T) {
	t.Parallel()
	rc := newWebhookReceiver(t, nil)
	in := startRun(t, "POST_RATE=0", "WEBHOOK_URL="+rc.URL+"/hooks", "WEBHOOK_SECRET="+webhookSecret,
		"PRESENCE_GRACE=200ms", "HEARTBEAT_INTERVAL=1s")
	types := func(g []webhooktest.Request) []string {
		var out []string
		for _, r := range g {
			var b webhookBody
			if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Type)
		}
		return out
	}
	stream := in.openLines(t, "/rooms/lobby/stream?user=ann")
	rc.await(t, 10*time.Second, "the join", func(g []webhooktest.Request) bool { return len(g) >= 2 })
	posted := in.postMessage(t, "lobby", "helo")
	id := strings.SplitN(string(posted), `"`, 5)[3]
	for _, c := range []struct{ method, body string }{{http.MethodPatch, `{"text":"hello"}`}, {http.MethodDelete, ""}} {
		if resp, body := in.request(t, c.method, "/rooms/lobby/messages/"+id, c.body, "Content-Type", "application/json"); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d %s", c.method, resp.StatusCode, body)
		}
	}
	stream.close()
	got := rc.await(t, 10*time.Second, "the leave", func(g []webhooktest.Request) bool { return len(g) >= 7 })
	want := []string{"room.occupied", "member.joined", "message.created", "message.edited", "message.deleted",
		"member.left", "room.vacated"}
	if g := slices.Compact(types(got)); !slices.Equal(g, want) {
		t.Fatalf("webhooks %v, want %v", g, want)
	}
	webhooktest.VerifyWithNPM(t, webhookSecret, got)
	if resp, body := in.request(t, http.MethodGet, "/admin/webhooks/dead", ""); resp.StatusCode != http.StatusOK ||
		strings.TrimSpace(string(body)) != `{"dead":[]}` {
		t.Fatalf("dead letters = %d %s", resp.StatusCode, body)
	}
}
