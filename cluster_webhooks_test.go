package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/broker/webhook/webhooktest"
	"roomcast/redisscripts/redistest"
)

// TestRedisClusterWebhooks: on a Cluster in sharded mode, with two
// instances delivering, rooms on every node send message.created, edited
// and deleted in order, a stream with a user sends room.occupied and
// member.joined, and the events of rooms whose receiver refuses become
// dead letters that GET /admin/webhooks/dead lists across the slots'
// buckets and POST .../retry sends again: every script touches only the
// room's slot.
func TestRedisClusterWebhooks(t *testing.T) {
	redistest.SkipIfShort(t, "starts a three-node Redis Cluster")
	nodes := redistest.StartCluster(t, 3)
	var mu sync.Mutex
	refuse := true
	rc := newWebhookReceiver(t, func(r webhooktest.Request) (int, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if refuse && strings.Contains(r.Body, `"room":"doomed`) {
			return http.StatusServiceUnavailable, 0
		}
		return http.StatusNoContent, 0
	})
	env := []string{"WEBHOOK_URL=" + rc.URL + "/hooks", "WEBHOOK_SECRET=" + webhookSecret, "WEBHOOK_MAX_AGE=1s",
		"WEBHOOK_LEASE=2s", "WEBHOOK_TIMEOUT=1s"}
	a, b := startClusterServer(t, nodes, "sharded", env...), startClusterServer(t, nodes, "sharded", env...)

	rooms := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	for _, room := range rooms {
		id := postText(t, a, room, "helo")
		change(t, http.MethodPatch, b+"/rooms/"+room+"/messages/"+id, `{"text":"hello"}`)
		change(t, http.MethodDelete, a+"/rooms/"+room+"/messages/"+id, "")
	}
	doomed := []string{"doomed-1", "doomed-2", "doomed-3"}
	for _, room := range doomed {
		postText(t, b, room, "no one hears this")
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b+"/rooms/golf/stream?user=ann", nil)
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })

	byRoom := func(g []webhooktest.Request) map[string][]string {
		out := map[string][]string{}
		for _, r := range g {
			var body struct {
				Type string
				Data struct{ Room string }
			}
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
				t.Fatal(err)
			}
			if list := out[body.Data.Room]; len(list) == 0 || list[len(list)-1] != body.Type {
				out[body.Data.Room] = append(list, body.Type) // duplicates are allowed
			}
		}
		return out
	}
	messages := []string{"message.created", "message.edited", "message.deleted"}
	rc.await(t, 20*time.Second, "every room's events", func(g []webhooktest.Request) bool {
		got := byRoom(g)
		for _, room := range rooms {
			if len(got[room]) < 3 {
				return false
			}
		}
		return len(got["golf"]) >= 2
	})
	got := byRoom(rc.requests())
	for _, room := range rooms {
		if !slices.Equal(got[room], messages) {
			t.Fatalf("%s: webhooks %v, want %v", room, got[room], messages)
		}
	}
	if want := []string{"room.occupied", "member.joined"}; !slices.Equal(got["golf"], want) {
		t.Fatalf("golf: webhooks %v, want %v", got["golf"], want)
	}

	// The doomed rooms' events die after WEBHOOK_MAX_AGE.
	var dead deadList
	deadline := time.Now().Add(20 * time.Second)
	for len(dead.Dead) < len(doomed) {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %+v, want the %d doomed rooms'", dead, len(doomed))
		}
		select {
		case <-rc.notify:
		case <-time.After(200 * time.Millisecond): // a death makes no request to await
		}
		dead = listDead(t, a)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	before := len(rc.requests())
	for _, d := range dead.Dead {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b+"/admin/webhooks/dead/"+d.ID+"/retry", nil)
		resp, err := checkedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("retry %s: %d", d.ID, resp.StatusCode)
		}
	}
	rc.await(t, 20*time.Second, "the retried events", func(g []webhooktest.Request) bool {
		for _, d := range dead.Dead {
			if !slices.ContainsFunc(g[before:], func(r webhooktest.Request) bool {
				return r.ID == d.ID && strings.Contains(r.Body, `"no one hears this"`)
			}) {
				return false
			}
		}
		return true
	})
	if left := listDead(t, a); len(left.Dead) != 0 {
		t.Fatalf("dead letters after the retries: %+v", left.Dead)
	}
	webhooktest.VerifyWithNPM(t, webhookSecret, rc.requests())
}

type deadList struct {
	Dead []struct {
		ID   string `json:"id"`
		Room string `json:"room"`
	} `json:"dead"`
}

func listDead(t *testing.T, base string) deadList {
	t.Helper()
	resp, err := checkedClient.Get(base + "/admin/webhooks/dead")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l deadList
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&l) != nil {
		t.Fatalf("GET /admin/webhooks/dead: %d", resp.StatusCode)
	}
	return l
}
