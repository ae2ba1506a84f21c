package api_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"roomcast/broker/chat"
)

func TestStreamDeliversPostedMessagesInOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	c := s.openStream(t, "/rooms/lobby/stream")
	if got := c.resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Fatalf("Content-Type = %q", got)
	}
	c.awaitOpen()
	var posted []message
	for i := range 20 {
		posted = append(posted, s.post(t, "lobby", fmt.Sprintf("m%d", i)))
	}
	for _, want := range posted {
		got := c.nextMessage()
		if got != want {
			t.Fatalf("streamed %+v, want %+v", got, want)
		}
	}
}

func TestStreamResumesAfterLastEventID(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"header", "query"} {
		t.Run(how, func(t *testing.T) {
			s := startServer(t, serverConfig{})
			var posted []message
			for i := range 10 {
				posted = append(posted, s.post(t, "r", fmt.Sprintf("m%d", i)))
			}
			var c *sseClient
			if how == "header" {
				c = s.openStream(t, "/rooms/r/stream", "Last-Event-ID", posted[3].ID)
			} else {
				c = s.openStream(t, "/rooms/r/stream?last_event_id="+posted[3].ID)
			}
			c.awaitOpen()
			posted = append(posted, s.post(t, "r", "live"))
			for _, want := range posted[4:] {
				if got := c.nextMessage(); got != want {
					t.Fatalf("streamed %+v, want %+v", got, want)
				}
			}
		})
	}
}

func TestStreamRejectsBadRoom(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	resp, body := s.do(t, http.MethodGet, "/rooms/a*b/stream", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400; body %s", resp.StatusCode, body)
	}
}

// TestStreamOverHTTP2IsServedByItsHandler streams over HTTP/2, where the
// connection cannot be handed to the engine: the handler serves the
// stream itself, with the same history-then-live logic.
func TestStreamOverHTTP2IsServedByItsHandler(t *testing.T) {
	s := startServer(t, serverConfig{HTTP2: true})
	first, err := s.Store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "one"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/rooms/r/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", first.ID.String())
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
	second, err := s.Store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "two"})
	if err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "id: ") {
			if line != "id: "+second.ID.String() {
				t.Fatalf("first message streamed %q, want the one after Last-Event-ID", line)
			}
			return
		}
	}
	t.Fatalf("stream ended: %v", lines.Err())
}
