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

// TestRedisCluster runs roomcast on a three-node Redis Cluster: the
// scripts' keys share a slot per room, rooms spread over every node, and
// the one shared subscription receives the messages of all of them.
func TestRedisCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	ctx, cancel := context.WithCancel(t.Context())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, []string{"ADDR=127.0.0.1:0", "REDIS_CLUSTER=true", "REDIS_URL=" + redistest.ClusterURL(nodes)},
			io.Discard, func(a string) { addr <- a })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("run: %v", err)
	}

	rooms := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"}
	streams := make(map[string]*bufio.Scanner)
	for _, room := range rooms {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/rooms/"+room+"/stream", nil)
		resp, err := checkedClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "retry:") {
			t.Fatalf("stream of %s did not open", room)
		}
		streams[room] = sc
	}
	for _, room := range rooms {
		resp, err := checkedClient.Post(base+"/rooms/"+room+"/messages", "application/json",
			strings.NewReader(fmt.Sprintf(`{"text":"hello %s"}`, room)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("post to %s: %d", room, resp.StatusCode)
		}
	}
	for _, room := range rooms {
		data := nextData(t, streams[room])
		var m struct{ Room, Text string }
		if err := json.Unmarshal([]byte(data), &m); err != nil || m.Room != room || m.Text != "hello "+room {
			t.Fatalf("stream of %s got %s", room, data)
		}
		resp, err := checkedClient.Get(base + "/rooms/" + room + "/messages")
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Messages []struct{ Text string } }
		_ = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if len(page.Messages) != 1 || page.Messages[0].Text != "hello "+room {
			t.Fatalf("history of %s = %+v", room, page)
		}
	}
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
