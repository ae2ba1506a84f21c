package api_test

import (
	"fmt"
	"net/http"
	"testing"
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
