package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"roomcast/redisscripts/redistest"
)

// TestRedisClusterEdits: on a Cluster in sharded mode, edits and deletes
// through one instance reach streams on another, live and on resume, for
// rooms on every node: the change scripts touch only the room's slot
// (its log included) and SPUBLISH on the room's shard channel.
func TestRedisClusterEdits(t *testing.T) {
	redistest.SkipIfShort(t, "starts a three-node Redis Cluster")
	nodes := redistest.StartCluster(t, 3)
	a, b := startClusterServer(t, nodes, "sharded"), startClusterServer(t, nodes, "sharded")
	for _, room := range []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"} {
		live := openStream(t, b, room, "")
		id := postText(t, a, room, "helo")
		change(t, http.MethodPatch, a+"/rooms/"+room+"/messages/"+id, `{"text":"hello"}`)
		change(t, http.MethodDelete, a+"/rooms/"+room+"/messages/"+id, "")
		resumed := openStream(t, b, room, id) // from the message: both changes
		for _, sc := range []*bufio.Scanner{live, resumed} {
			if sc == live {
				if got := nextData(t, sc); !strings.Contains(got, `"text":"helo"`) {
					t.Fatalf("%s: stream got %s, want the message", room, got)
				}
			}
			if got := nextData(t, sc); !strings.Contains(got, `"text":"hello"`) || !strings.Contains(got, `"version":2`) {
				t.Fatalf("%s: stream got %s, want the edit", room, got)
			}
			if got := nextData(t, sc); !strings.Contains(got, `"deleted":true`) || !strings.Contains(got, `"version":3`) {
				t.Fatalf("%s: stream got %s, want the delete", room, got)
			}
		}
	}
}

// change sends an edit or delete and fails the test unless it is a 200.
func change(t *testing.T, method, url, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	var m struct{ Version int }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &m) != nil || m.Version < 2 {
		t.Fatalf("%s %s = %d %s", method, url, resp.StatusCode, answer)
	}
}
