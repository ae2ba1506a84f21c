package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// rawPost is a posted message with the exact bytes the POST returned.
type rawPost struct {
	message
	raw string
}

// postRawMany posts n messages to room and returns them with their bytes.
func (s *testServer) postRawMany(t testing.TB, room string, n int) []rawPost {
	t.Helper()
	out := make([]rawPost, n)
	for i := range out {
		resp, body := s.postJSON(t, room, fmt.Sprintf(`{"text":"r%d \"q\" \\n"}`, i+1))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &out[i].message); err != nil {
			t.Fatal(err)
		}
		out[i].raw = strings.TrimSuffix(string(body), "\n") // the event's data has no final newline
	}
	return out
}

// wantReplay fails unless the next events of c are exactly want, byte for
// byte, with their ids.
func wantReplay(t testing.TB, c *sseClient, want []rawPost) {
	t.Helper()
	for _, m := range want {
		ev := c.next()
		if ev.Event != "message" || ev.ID != m.ID || ev.Data != m.raw {
			t.Fatalf("event %+v, want id %s data %s", ev, m.ID, m.raw)
		}
	}
}

func TestStreamResumeReplaysExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   func(posted []rawPost) string
		header func(posted []rawPost) []string
		from   int // index of the first message the client must get
	}{
		{
			name:   "header",
			path:   func([]rawPost) string { return "/rooms/r/stream" },
			header: func(p []rawPost) []string { return []string{"Last-Event-ID", p[3].ID} },
			from:   4,
		},
		{
			name:   "query",
			path:   func(p []rawPost) string { return "/rooms/r/stream?last_event_id=" + url.QueryEscape(p[3].ID) },
			header: func([]rawPost) []string { return nil },
			from:   4,
		},
		{
			// EventSource reconnects to the URL it was given, with the
			// query of its first connection, plus the newer header.
			name:   "header wins over query",
			path:   func(p []rawPost) string { return "/rooms/r/stream?last_event_id=" + p[1].ID },
			header: func(p []rawPost) []string { return []string{"Last-Event-ID", p[6].ID} },
			from:   7,
		},
		{
			name:   "from the newest",
			path:   func(p []rawPost) string { return "/rooms/r/stream?last_event_id=" + p[9].ID },
			header: func([]rawPost) []string { return nil },
			from:   10,
		},
		{
			name:   "from the first",
			path:   func([]rawPost) string { return "/rooms/r/stream" },
			header: func(p []rawPost) []string { return []string{"Last-Event-ID", p[0].ID} },
			from:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, serverConfig{})
			posted := s.postRawMany(t, "r", 10)
			c := s.openStream(t, tt.path(posted), tt.header(posted)...)
			c.awaitOpen()
			wantReplay(t, c, posted[tt.from:])
			live := s.postRawMany(t, "r", 3)
			wantReplay(t, c, live)
		})
	}
}

func TestStreamWithoutResumeIsLiveOnly(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	s.postRawMany(t, "r", 5)
	c := s.openStream(t, "/rooms/r/stream")
	c.awaitOpen()
	live := s.postRawMany(t, "r", 2)
	wantReplay(t, c, live)
}

func TestStreamResumeAfterTrimSendsReset(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{HistoryMax: 5})
	posted := s.postRawMany(t, "r", 12)
	c := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", posted[1].ID)
	c.awaitOpen()
	ev := c.next()
	if ev.Event != "reset" || ev.ID != "" {
		t.Fatalf("first event %+v, want a reset without id", ev)
	}
	var reset struct {
		Reason         string `json:"reason"`
		LastEventID    string `json:"last_event_id"`
		FirstAvailable string `json:"first_available_id"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &reset); err != nil {
		t.Fatalf("reset data %q: %v", ev.Data, err)
	}
	if reset.Reason != "trimmed" || reset.LastEventID != posted[1].ID || reset.FirstAvailable != posted[7].ID {
		t.Fatalf("reset %+v, want trimmed after %s, first available %s", reset, posted[1].ID, posted[7].ID)
	}
	wantReplay(t, c, posted[7:])
	wantReplay(t, c, s.postRawMany(t, "r", 1))
}

func TestStreamResumeAfterEpochChange(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	old := s.postRawMany(t, "r", 3)
	if err := s.Redis.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	renewed := s.postRawMany(t, "r", 2)
	c := s.openStream(t, "/rooms/r/stream?last_event_id="+old[2].ID)
	c.awaitOpen()
	if ev := c.next(); ev.Event != "reset" || !strings.Contains(ev.Data, `"reason":"epoch_changed"`) {
		t.Fatalf("first event %+v, want an epoch_changed reset", ev)
	}
	wantReplay(t, c, renewed)
}

func TestStreamRejectsMalformedResumePoint(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	s.post(t, "r", "x")
	for _, tt := range []struct{ query, header string }{
		{header: "garbage"},
		{header: "a-0"},
		{query: "?last_event_id=abc"},
		{query: "?last_event_id=a-1-1"},
		{query: "?last_event_id=a-1", header: "bad"},
	} {
		var header []string
		if tt.header != "" {
			header = []string{"Last-Event-ID", tt.header}
		}
		resp, body := s.do(t, http.MethodGet, "/rooms/r/stream"+tt.query, "", header...)
		wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidCursor)
	}
}

func TestStreamHeadersAndHeartbeat(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Heartbeat: 50 * time.Millisecond})
	c := s.openStream(t, "/rooms/r/stream", "Accept-Encoding", "gzip")
	for name, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Content-Encoding": "",
	} {
		if got := c.resp.Header.Get(name); got != want {
			t.Fatalf("%s = %q, want %q", name, got, want)
		}
	}
	c.awaitOpen()
	deadline := time.After(5 * time.Second)
	for pings := 0; pings < 3; {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatalf("stream ended while waiting for heartbeats")
			}
			if ev.Comment == "" || ev.Event != "" || ev.Data != "" {
				t.Fatalf("idle stream sent %+v, want only comments", ev)
			}
			pings++
		case <-deadline:
			t.Fatalf("fewer than 3 heartbeats within 5s at a 50ms interval")
		}
	}
}

// TestStreamResumeRacingConcurrentPosts resumes streams while 10 writers
// post 50 messages each: every client must get every message after its
// resume point exactly once, in order, across the replay/live switch.
func TestStreamResumeRacingConcurrentPosts(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	pre := s.postMany(t, "race", 20)
	const writers, each = 10, 50
	last := int64(len(pre) + writers*each)

	type client struct {
		c     *sseClient
		after int64 // the seq the client resumed from
	}
	var clients []client
	open := func(after int, how string) {
		switch how {
		case "live":
			c := s.openStream(t, "/rooms/race/stream")
			c.awaitOpen()
			clients = append(clients, client{c, -1})
		case "header":
			c := s.openStream(t, "/rooms/race/stream", "Last-Event-ID", pre[after-1].ID)
			clients = append(clients, client{c, int64(after)})
		case "query":
			c := s.openStream(t, "/rooms/race/stream?last_event_id="+pre[after-1].ID)
			clients = append(clients, client{c, int64(after)})
		}
	}
	open(0, "live")
	open(10, "header")

	milestones := map[int64]chan struct{}{100: make(chan struct{}), 250: make(chan struct{}), 400: make(chan struct{})}
	var posted atomic.Int64
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.tryPost(context.Background(), "race", fmt.Sprintf("w%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
				if ch, ok := milestones[posted.Add(1)]; ok {
					close(ch)
				}
			}
		})
	}
	for _, step := range []struct {
		at    int64
		after int
		how   string
	}{{100, 20, "header"}, {250, 5, "query"}, {400, 1, "header"}} {
		select {
		case <-milestones[step.at]:
		case err := <-errs:
			t.Fatalf("post: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("posts did not reach %d within 30s", step.at)
		}
		open(step.after, step.how)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("post: %v", err)
	}

	for i, cl := range clients {
		want := cl.after + 1
		if cl.after < 0 {
			want = int64(len(pre)) + 1
		}
		for ; want <= last; want++ {
			if m := cl.c.nextMessage(); m.Seq != want {
				t.Fatalf("client %d (resumed after %d) got seq %d, want %d", i, cl.after, m.Seq, want)
			}
		}
	}
	for i, cl := range clients {
		select {
		case ev := <-cl.c.events:
			if ev.Event != "" || ev.Data != "" {
				t.Fatalf("client %d got %+v after the last message", i, ev)
			}
		default:
		}
	}
}

// tryPost posts text to room from any goroutine, returning an error
// instead of failing the test.
func (s *testServer) tryPost(ctx context.Context, room, text string) error {
	body, _ := json.Marshal(map[string]string{"text": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/rooms/"+room+"/messages", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := checkedClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST status %d: %s", resp.StatusCode, data)
	}
	return nil
}

// rawStream is a stream client on a bare TCP connection that can stop
// reading, so that the server's writes to it block. It keeps the default
// receive buffer: shrinking it on a connected socket makes Linux drop
// segments, and the sender's retransmission backoff then stalls the
// stream for tens of seconds once the client reads again.
// Not checkedClient: the test stops reading and sets read deadlines on the bare connection.
type rawStream struct {
	conn  net.Conn
	lines *bufio.Reader // the decoded body
	last  string
}

func openRawStream(t testing.TB, s *testServer, path string) *rawStream {
	t.Helper()
	conn := s.dialTCP(t)
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, conn.RemoteAddr()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("raw stream: status %d", resp.StatusCode)
	}
	r := &rawStream{conn: conn, lines: bufio.NewReader(resp.Body)}
	if line, _ := r.line(t); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("raw stream began with %q, want a retry line", line)
	}
	return r
}

// line reads one line of the event stream; ok is false at its end.
func (r *rawStream) line(t testing.TB) (line string, ok bool) {
	t.Helper()
	line, err := r.lines.ReadString('\n')
	if err == io.EOF && line == "" {
		return "", false
	}
	if err != nil {
		t.Fatalf("raw stream read: %v (after %.80q)", err, r.last)
	}
	r.last = line
	return strings.TrimSuffix(line, "\n"), true
}

// TestSlowClientDoesNotDelayOthers has one client stop reading while
// another keeps up: every message reaches the fast client at once, and the
// slow client is disconnected with a notice once its queue is full.
func TestSlowClientDoesNotDelayOthers(t *testing.T) {
	const maxText = 60_000
	s := startServer(t, serverConfig{ClientBuffer: 16, WriteTimeout: time.Minute, MaxMessageBytes: maxText})
	slow := openRawStream(t, s, "/rooms/r/stream")
	fast := s.openStream(t, "/rooms/r/stream")
	fast.awaitOpen()

	// Post until the slow client's socket buffers and queue are full and the
	// hub drops it, then some more.
	text := strings.Repeat("x", maxText)
	var times []time.Duration
	posted, droppedAt := 0, 0
	for droppedAt == 0 || posted < droppedAt+20 {
		if posted == 2000 {
			t.Fatalf("the slow client was not dropped after %d messages of %d bytes", posted, maxText)
		}
		start := time.Now()
		m := s.post(t, "r", text)
		posted++
		if got := fast.nextMessage(); got != m {
			t.Fatalf("fast client got %+v, want %+v", got, m)
		}
		times = append(times, time.Since(start))
		if droppedAt == 0 && s.Hub.Stats().SlowDrops > 0 {
			droppedAt = posted
		}
	}
	// Had the slow client held the others up, they would have waited for
	// its write deadline of a minute; nextMessage allows 10s. The median
	// shows that delivery stayed prompt, whatever the load of the machine.
	slices.Sort(times)
	median := times[len(times)/2]
	t.Logf("slow client dropped at message %d; post-to-fast-client time over %d messages: median %v, worst %v",
		droppedAt, posted, median, times[len(times)-1])
	if median > 500*time.Millisecond {
		t.Fatalf("median post-to-fast-client time %v, want it prompt", median)
	}
	if got := s.Hub.Stats().SlowDrops; got != 1 {
		t.Fatalf("hub dropped %d slow subscribers, want 1", got)
	}

	_ = slow.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	seq, notice := 0, ""
	for {
		line, ok := slow.line(t)
		if !ok {
			break
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			seq++
			if !strings.HasSuffix(id, fmt.Sprintf("-%d", seq)) {
				t.Fatalf("slow client got id %s, want seq %d", id, seq)
			}
		}
		if c, ok := strings.CutPrefix(line, ": "); ok {
			notice = c
		}
	}
	t.Logf("slow client got %d of %d messages before it was disconnected", seq, posted)
	if seq >= droppedAt {
		t.Fatalf("slow client got %d messages, but was dropped at message %d", seq, droppedAt)
	}
	if !strings.Contains(notice, "too slow") {
		t.Fatalf("slow client's last comment = %q, want the too-slow notice", notice)
	}
}

// TestStreamDisconnectReleasesEverything closes a stream and checks that
// the hub forgets its subscription, posts no longer reach it, and no
// goroutine is left behind.
func TestStreamDisconnectReleasesEverything(t *testing.T) {
	s := startServer(t, serverConfig{})
	s.post(t, "warm", "x")
	before := goleak.IgnoreCurrent()

	c := s.openStream(t, "/rooms/gone/stream")
	c.awaitOpen()
	s.post(t, "gone", "1")
	c.nextMessage()
	if st := s.Hub.Stats(); st.Subscribers != 1 || st.Rooms != 1 {
		t.Fatalf("hub stats with one stream open: %+v", st)
	}
	c.Close()

	waitFor(t, "the hub to drop the subscription", func() bool {
		st := s.Hub.Stats()
		return st.Subscribers == 0 && st.Rooms == 0
	})
	st := s.Hub.Stats()
	s.post(t, "gone", "2")
	waitFor(t, "the hub to receive the post", func() bool { return s.Hub.Stats().Received > st.Received })
	if got := s.Hub.Stats().Delivered; got != st.Delivered {
		t.Fatalf("a post after the disconnect was delivered %d times", got-st.Delivered)
	}

	checkedClient.CloseIdleConnections()
	if err := goleak.Find(before); err != nil {
		t.Fatalf("goroutines left after the stream closed: %v", err)
	}
}
