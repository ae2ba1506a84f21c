package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// scrape returns the value of the metric line that starts with series.
func scrape(t *testing.T, s *testServer, series string) string {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			return value
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return ""
}

func TestMetricsCountPostsStreamsAndDeliveries(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	c := s.openStream(t, "/rooms/m/stream")
	c.awaitOpen()
	s.post(t, "m", "one")
	s.post(t, "m", "two")
	c.nextMessage()
	c.nextMessage()
	s.do(t, http.MethodGet, "/rooms/m/messages", "")

	for series, want := range map[string]string{
		`roomcast_messages_posted_total{replayed="false"}`: "2",
		`roomcast_streams_open`:                            "1",
		`roomcast_rooms_listened`:                          "1",
		`roomcast_subscribers`:                             "1",
		`roomcast_messages_delivered_total`:                "2",
		`roomcast_slow_client_drops_total`:                 "0",
		`roomcast_http_request_duration_seconds_count{method="POST",route="/rooms/:room/messages",status="201"}`: "2",
		`roomcast_http_request_duration_seconds_count{method="GET",route="/rooms/:room/messages",status="200"}`:  "1",
	} {
		if got := scrape(t, s, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	resp, body := s.do(t, http.MethodGet, "/metrics", "")
	if regexp.MustCompile(`route="/rooms/m/`).Match(body) {
		t.Errorf("room ids leak into metric labels")
	}
	if id := resp.Header.Get("X-Request-Id"); len(id) != 16 {
		t.Errorf("X-Request-Id = %q, want a generated 16-character id", id)
	}
	resp, _ = s.do(t, http.MethodGet, "/healthz", "", "X-Request-Id", "trace-42")
	if got := resp.Header.Get("X-Request-Id"); got != "trace-42" {
		t.Errorf("X-Request-Id = %q, want the client's trace-42 echoed", got)
	}
}

func TestMetricsKeepMethodLabelsFew(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, method := range []string{"M1", "M2", "BREW"} {
		s.do(t, method, "/healthz", "")
	}
	resp, body := s.do(t, http.MethodGet, "/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	for _, m := range []string{"M1", "M2", "BREW"} {
		if strings.Contains(string(body), `method="`+m+`"`) {
			t.Fatalf("method %q became a label value", m)
		}
	}
	if got := scrape(t, s, `roomcast_http_request_duration_seconds_count{method="other",route="/healthz",status="405"}`); got != "3" {
		t.Fatalf("requests with other methods = %s, want 3", got)
	}
}
