package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/api"
	"roomcast/api/app"
	"roomcast/broker"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) {
	// The tests mostly wait on Redis, sockets and timers, not on the CPU:
	// run more at once than GOMAXPROCS, unless -parallel was given.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "8")
	}
	goleak.VerifyTestMain(m)
}

// testServer is a roomcast API on a real Redis, as main wires it.
type testServer struct {
	URL   string
	Redis *redistest.Server
	Store *redisscripts.Store
	Hub   *broker.Hub
	// Client trusts the server's certificate when it serves HTTP/2; it
	// does not check the contract.
	Client *http.Client
}

// serverConfig tunes a testServer; zero fields take the defaults below.
type serverConfig struct {
	Redis           *redistest.Server // share one Redis between servers
	HistoryMax      int
	ClientBuffer    int
	Heartbeat       time.Duration
	MaxMessageBytes int
	CheckInterval   time.Duration
	RoomTTL         time.Duration // 0: rooms are kept for ever
	WriteTimeout    time.Duration // deadline of each stream write
	Security        api.Security  // zero: open mode without limits
	HTTP2           bool          // serve HTTP/2 over TLS, where a stream cannot be hijacked; use Client
	PresenceGrace   time.Duration
	PresenceBeat    time.Duration // the presence heartbeat
	TypingInterval  time.Duration
	ReceiptsMax     int             // READ_RECEIPTS_MAX_WATCHERS; 0: no receipts
	EditWindow      time.Duration   // 0: authors may change their messages for ever
	PublishHook     app.PublishHook // zero: off
	Logger          *slog.Logger    // nil: testLogger()
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testSpec is openapi.yaml, read once.
var testSpec = func() func(testing.TB) []byte {
	spec, err := os.ReadFile("../openapi.yaml")
	return func(t testing.TB) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
}()

func startServer(t testing.TB, cfg serverConfig) *testServer {
	t.Helper()
	if cfg.Redis == nil {
		cfg.Redis = redistest.Start(t)
	}
	cfg.HistoryMax = cmp(cfg.HistoryMax, 1000)
	cfg.ClientBuffer = cmp(cfg.ClientBuffer, 256)
	cfg.Heartbeat = cmp(cfg.Heartbeat, 15*time.Second)
	cfg.MaxMessageBytes = cmp(cfg.MaxMessageBytes, 4096)
	cfg.CheckInterval = cmp(cfg.CheckInterval, time.Second)
	cfg.WriteTimeout = cmp(cfg.WriteTimeout, 5*time.Second)
	cfg.PresenceGrace = cmp(cfg.PresenceGrace, 10*time.Second)
	cfg.PresenceBeat = cmp(cfg.PresenceBeat, 15*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}

	// As main configures it: bounded waits and no automatic resends.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	a := app.New(rdb, app.Options{
		KeyPrefix: "roomcast:", HistoryMax: cfg.HistoryMax, IdempotencyTTL: time.Hour, RoomTTL: cfg.RoomTTL,
		RedisTimeout: time.Second, ClientBuffer: cfg.ClientBuffer, DeliveryCheckInterval: cfg.CheckInterval,
		MaxMessageBytes: cfg.MaxMessageBytes, HeartbeatInterval: cfg.Heartbeat, SSERetry: time.Second,
		StreamWriteTimeout: cfg.WriteTimeout, Security: cfg.Security, Spec: testSpec(t), Logger: cfg.Logger,
		PresenceGrace: cfg.PresenceGrace, PresenceInterval: cfg.PresenceBeat, PresenceMaxUsers: 100,
		TypingInterval: cfg.TypingInterval, StreamMaxRooms: 50, ReadReceiptsMaxWatchers: cfg.ReceiptsMax, EditWindow: cfg.EditWindow, PublishHook: cfg.PublishHook,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	if err := a.WaitStarted(t.Context()); err != nil {
		t.Fatalf("hub did not start: %v", err)
	}
	srv := httptest.NewUnstartedServer(a.Handler)
	if cfg.HTTP2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return &testServer{URL: srv.URL, Redis: cfg.Redis, Store: a.Store, Hub: a.Hub, Client: srv.Client()}
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// message is the JSON of a stored message.
type message struct {
	ID   string `json:"id"`
	Seq  int64  `json:"seq"`
	Room string `json:"room"`
	User string `json:"user"`
	Text string `json:"text"`
	Time string `json:"time"`
	// Version is 1 when posted, one more per edit and for the delete.
	Version  int64   `json:"version"`
	EditedAt string  `json:"edited_at"`
	Deleted  bool    `json:"deleted"`
	ReplyTo  string  `json:"reply_to"`
	Metadata rawJSON `json:"metadata"`
}

// rawJSON is a JSON value as it was written, comparable unlike
// json.RawMessage; "" when absent.
type rawJSON string

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = rawJSON(b)
	return nil
}

// post posts text to room and returns the stored message; it fails the
// test unless the answer is 201.
func (s *testServer) post(t testing.TB, room, text string) message {
	t.Helper()
	resp, body := s.do(t, http.MethodPost, "/rooms/"+room+"/messages",
		fmt.Sprintf(`{"text":%q}`, text), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST status = %d, want 201; body %s", resp.StatusCode, body)
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("POST body %s: %v", body, err)
	}
	return m
}

// do sends a request with optional header name/value pairs (added in
// order, so a name may repeat) and returns the response with its whole
// body. The exchange is checked against openapi.yaml.
func (s *testServer) do(t testing.TB, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, data
}

// event is one parsed Server-Sent Event or comment.
type event struct {
	ID, Event, Data string
	Retry           string
	Comment         string
}

// sseClient reads a stream line by line.
type sseClient struct {
	t      testing.TB
	resp   *http.Response
	events chan event
	cancel context.CancelFunc
}

// openStream connects to a stream with optional header pairs, whatever
// the answer's status (the caller checks it), checked against openapi.yaml.
func (s *testServer) openStream(t testing.TB, path string, header ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := checkedClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	c := &sseClient{t: t, resp: resp, events: make(chan event, 4096), cancel: cancel}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

func (c *sseClient) Close() {
	c.cancel()
	c.resp.Body.Close()
}

func (c *sseClient) read() {
	defer close(c.events)
	sc := bufio.NewScanner(c.resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var ev event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev != (event{}) {
				c.events <- ev
			}
			ev = event{}
		case strings.HasPrefix(line, ":"):
			ev.Comment = strings.TrimSpace(line[1:])
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID = value
			case "event":
				ev.Event = value
			case "data":
				if ev.Data != "" {
					ev.Data += "\n"
				}
				ev.Data += value
			case "retry":
				ev.Retry = value
			}
		}
	}
}

// next returns the next event that is not a comment or retry line, nor a
// presence event (join, leave: a stream of a named user sees its own join),
// failing the test after a timeout or at the end of the stream.
func (c *sseClient) next() event {
	c.t.Helper()
	for {
		if ev := c.nextAny(); ev.Event != "join" && ev.Event != "leave" {
			return ev
		}
	}
}

// nextAny returns the next event that is not a comment or retry line.
func (c *sseClient) nextAny() event {
	c.t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatalf("stream ended while waiting for an event")
			}
			if ev.Event != "" || ev.Data != "" {
				return ev
			}
		case <-time.After(10 * time.Second):
			c.t.Fatalf("no event within 10s")
		}
	}
}

// nextMessage returns the next "message" event decoded.
func (c *sseClient) nextMessage() message {
	c.t.Helper()
	m, id := c.nextMessageEvent(true)
	if m.ID != id {
		c.t.Fatalf("event id %q, data id %q", id, m.ID)
	}
	return m
}

// nextMessageEvent returns the next event, which must be a message,
// decoded, and its id; skipReads passes over read events (the stream's
// user posting moves their marker) on the way.
func (c *sseClient) nextMessageEvent(skipReads ...bool) (message, string) {
	c.t.Helper()
	ev := c.next()
	for len(skipReads) > 0 && skipReads[0] && ev.Event == "read" {
		ev = c.next()
	}
	if ev.Event != "message" {
		c.t.Fatalf("event = %q (data %s), want message", ev.Event, ev.Data)
	}
	var m message
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		c.t.Fatalf("event data %q: %v", ev.Data, err)
	}
	return m, ev.ID
}

// awaitOpen waits for the stream's opening retry line, which is written
// once the subscription exists.
func (c *sseClient) awaitOpen() {
	c.t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok || ev.Retry == "" {
			c.t.Fatalf("stream began with %+v, want a retry line", ev)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("stream did not open within 10s")
	}
}

// dialTCP opens a bare connection to the server, for requests no
// http.Client would send; it is closed when the test ends.
func (s *testServer) dialTCP(t testing.TB) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitFor polls cond until it holds, failing the test after 10 seconds;
// the one way this package's tests wait for a condition.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
