package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"roomcast/redisscripts/redistest"
)

// TestRedisCluster runs roomcast on a three-node Redis Cluster in each
// broker mode: the scripts' keys share a slot per room, rooms spread over
// every node, and every room's messages reach the streams.
func TestRedisCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	for _, mode := range []string{"pattern", "sharded"} {
		t.Run(mode, func(t *testing.T) {
			base := startClusterServer(t, nodes, mode)
			rooms := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
			streams := make(map[string]*bufio.Scanner)
			for _, room := range rooms {
				streams[room] = openStream(t, base, room, "")
			}
			for _, room := range rooms {
				postText(t, base, room, mode+" hello "+room)
			}
			for _, room := range rooms {
				data := nextData(t, streams[room])
				var m struct{ Room, Text string }
				if err := json.Unmarshal([]byte(data), &m); err != nil || m.Room != room || m.Text != mode+" hello "+room {
					t.Fatalf("stream of %s got %s", room, data)
				}
				resp, err := checkedClient.Get(base + "/rooms/" + room + "/messages")
				if err != nil {
					t.Fatal(err)
				}
				var page struct{ Messages []struct{ Text string } }
				_ = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
				if n := len(page.Messages); n == 0 || page.Messages[n-1].Text != mode+" hello "+room {
					t.Fatalf("history of %s = %+v", room, page)
				}
			}
		})
	}

	t.Run("sharded-bans", func(t *testing.T) { clusterBans(t, nodes) })
	t.Run("sharded-rooms", func(t *testing.T) { clusterRooms(t, nodes) })

	// Three instances in sharded mode: a post on any reaches streams on the
	// others, and a stream resumes on another instance without a gap.
	t.Run("sharded-three-instances", func(t *testing.T) {
		s := []string{startClusterServer(t, nodes, "sharded"), startClusterServer(t, nodes, "sharded"),
			startClusterServer(t, nodes, "sharded")}
		const room = "trio"
		on1, on2 := openStream(t, s[1], room, ""), openStream(t, s[2], room, "")
		var last string
		for i := range 3 {
			last = postText(t, s[0], room, fmt.Sprint("m", i))
			for _, sc := range []*bufio.Scanner{on1, on2} {
				if got := nextData(t, sc); !strings.Contains(got, fmt.Sprintf(`"text":"m%d"`, i)) {
					t.Fatalf("stream got %s, want m%d", got, i)
				}
			}
		}
		for i := 3; i < 6; i++ { // while the client is away
			postText(t, s[2], room, fmt.Sprint("m", i))
		}
		resumed := openStream(t, s[0], room, last)
		postText(t, s[1], room, "m6")
		for i := 3; i <= 6; i++ {
			if got := nextData(t, resumed); !strings.Contains(got, fmt.Sprintf(`"text":"m%d"`, i)) {
				t.Fatalf("resumed stream got %s, want m%d", got, i)
			}
		}
	})
}

// clusterBans: on a Cluster in sharded mode, a ban through one
// instance reaches a user's streams on another for rooms on every node:
// the scripts PUBLISH the control channel from each room's node, and a
// plain PUBLISH reaches every node, so the one SUBSCRIBE per process
// hears it.
func clusterBans(t *testing.T, nodes []*redistest.Server) {
	a, b := startClusterServer(t, nodes, "sharded"), startClusterServer(t, nodes, "sharded")
	rooms := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	streams := make(map[string]*bufio.Scanner)
	for _, room := range rooms {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, a+"/rooms/"+room+"/stream?user=eve", nil)
		resp, err := checkedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		sc := bufio.NewScanner(resp.Body)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "retry:") {
			t.Fatalf("stream of %s did not open", room)
		}
		streams[room] = sc
	}
	for _, room := range rooms {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, b+"/rooms/"+room+"/bans/eve", nil)
		resp, err := checkedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("ban in %s: status %d, want 201", room, resp.StatusCode)
		}
	}
	for _, room := range rooms {
		if data := nextData(t, streams[room]); !strings.Contains(data, `"room":"`+room+`"`) || !strings.Contains(data, `"user":"eve"`) {
			t.Fatalf("stream of %s got %s, want the banned event", room, data)
		}
	}
	resp, err := checkedClient.Post(b+"/admin/tokens/revoke", "application/json", strings.NewReader(`{"jti":"t-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d, want 200", resp.StatusCode)
	}
}

// clusterRooms: on a Cluster in sharded mode, room settings put through
// one instance hold posts through another for rooms on every node (the
// post script reads them in the room's slot), and the directory merges
// the rooms of every slot's bucket, a page at a time.
func clusterRooms(t *testing.T, nodes []*redistest.Server) {
	a, b := startClusterServer(t, nodes, "sharded"), startClusterServer(t, nodes, "sharded")
	rooms := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	for _, room := range rooms {
		postText(t, a, room, "before "+room)
	}
	do := func(method, url, body string) (int, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := checkedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	for _, room := range rooms {
		if status, body := do(http.MethodPut, a+"/rooms/"+room, `{"title":"T `+room+`","read_only":true}`); status != http.StatusOK {
			t.Fatalf("settings of %s: %d %s", room, status, body)
		}
	}
	for _, room := range rooms {
		status, body := do(http.MethodPost, b+"/rooms/"+room+"/messages", `{"text":"refused"}`)
		if status != http.StatusForbidden || !strings.Contains(string(body), "read-only") {
			t.Fatalf("post to read-only %s through another instance: %d %s", room, status, body)
		}
	}
	seen := map[string]string{}
	for url, pages := b+"/rooms?limit=2", 0; url != ""; pages++ {
		if pages > 20 {
			t.Fatal("the directory does not end")
		}
		status, body := do(http.MethodGet, url, "")
		var page struct {
			Rooms []struct{ Room, Title string }
			Next  string
		}
		if err := json.Unmarshal(body, &page); err != nil || status != http.StatusOK {
			t.Fatalf("directory: %d %s", status, body)
		}
		for _, r := range page.Rooms {
			seen[r.Room] = r.Title
		}
		url = ""
		if page.Next != "" {
			url = b + "/rooms?limit=2&cursor=" + page.Next
		}
	}
	for _, room := range rooms {
		if seen[room] != "T "+room {
			t.Fatalf("directory lists %v, want %s with its title", seen, room)
		}
	}
}

// startClusterServer runs roomcast on the cluster in a broker mode and
// returns its base URL; it stops when the test ends.
func startClusterServer(t *testing.T, nodes []*redistest.Server, mode string, environ ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, append([]string{"ADDR=127.0.0.1:0", "REDIS_CLUSTER=true", "BROKER_MODE=" + mode,
			"REDIS_URL=" + redistest.ClusterURL(nodes), "POST_RATE=0"}, environ...),
			io.Discard, func(a string) { addr <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	return ""
}

// openStream opens a room's stream, resuming after lastEventID if not
// empty, and returns it once the server has subscribed.
func openStream(t *testing.T, base, room, lastEventID string) *bufio.Scanner {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/rooms/"+room+"/stream", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "retry:") {
		t.Fatalf("stream of %s did not open", room)
	}
	return sc
}

// postText posts a message and returns its id.
func postText(t *testing.T, base, room, text string) string {
	t.Helper()
	resp, err := checkedClient.Post(base+"/rooms/"+room+"/messages", "application/json",
		strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("post to %s: %d %v", room, resp.StatusCode, err)
	}
	return m.ID
}

// nextData returns the data of the next event on a stream, failing after 10s.
func nextData(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got <- data
				return
			}
		}
		got <- ""
	}()
	select {
	case data := <-got:
		return data
	case <-time.After(10 * time.Second):
		t.Fatalf("no event within 10s")
	}
	return ""
}
