package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roomcast/api/contracttest"
	"roomcast/redisscripts/redistest"
)

// checkedClient sends the tests' requests and checks each exchange against
// openapi.yaml.
var checkedClient = contracttest.Client("openapi.yaml")

func TestMain(m *testing.M) {
	// startProcess runs this test binary again as a real roomcast process,
	// which tests can send signals to.
	if os.Getenv("ROOMCAST_AS_PROCESS") == "1" {
		os.Exit(runMain(nil))
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is roomcast started with run in this process.
type instance struct {
	url    string
	client *http.Client // nil: checkedClient
	out    *syncBuffer
	stop   func() error // ends run's context and returns its error
}

// startRun starts run on a free loopback port with environ, and stops it
// when the test ends if the test did not.
func startRun(t *testing.T, environ ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, append([]string{"ADDR=127.0.0.1:0"}, environ...), out, func(a string) { addr <- a })
	}()
	inst := &instance{out: out}
	var result error
	inst.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			result = err
		case <-time.After(15 * time.Second):
			result = errors.New("run did not return within 15s of cancellation")
		}
		return result
	})
	t.Cleanup(func() {
		if err := inst.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		inst.url = "http://" + a
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, out)
	case <-time.After(20 * time.Second):
		t.Fatalf("run did not listen within 20s\n%s", out)
	}
	return inst
}

// request sends one request and returns the response with its body.
func (in *instance) request(t *testing.T, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, in.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := in.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func (in *instance) httpClient() *http.Client {
	if in.client != nil {
		return in.client
	}
	return checkedClient
}

func (in *instance) postMessage(t *testing.T, room, text string) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"text": text})
	resp, data := in.request(t, http.MethodPost, "/rooms/"+room+"/messages", string(body), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST to %s: %d %s", room, resp.StatusCode, data)
	}
	return bytes.TrimSuffix(data, []byte("\n")) // the stored JSON, without the answer's final newline
}

// lineStream reads an event stream line by line on a goroutine.
type lineStream struct {
	lines chan string // closed at the end of the stream
	close func()
	proto int // the answer's HTTP major version
}

func (in *instance) openLines(t *testing.T, path string) *lineStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := in.httpClient().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &lineStream{lines: make(chan string, 1024), proto: resp.ProtoMajor}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	s.close = sync.OnceFunc(func() {
		cancel()
		resp.Body.Close()
		<-readDone
	})
	t.Cleanup(s.close)
	return s
}

// next returns the next line that is not empty, or "" with ok false at the
// end of the stream.
func (s *lineStream) next(t *testing.T) (line string, ok bool) {
	t.Helper()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok || line != "" {
				return line, ok
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no stream line within 10s")
		}
	}
}

func (s *lineStream) want(t *testing.T, want string) {
	t.Helper()
	if got, _ := s.next(t); got != want {
		t.Fatalf("stream line %q, want %q", got, want)
	}
}

// checkServes posts to a room while a stream watches it and checks that
// POST, stream and history agree byte for byte.
func checkServes(t *testing.T, in *instance) {
	t.Helper()
	stream := in.openLines(t, "/rooms/lobby/stream")
	if line, _ := stream.next(t); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("stream began with %q, want a retry line", line)
	}
	posted := in.postMessage(t, "lobby", "hello \"world\"\n")
	var m struct {
		ID   string `json:"id"`
		Seq  int64  `json:"seq"`
		Text string `json:"text"`
		Time string `json:"time"`
	}
	if err := json.Unmarshal(posted, &m); err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 || m.Text != "hello \"world\"\n" {
		t.Fatalf("posted %s", posted)
	}
	at, err := time.Parse(time.RFC3339, m.Time)
	if err != nil || !regexp.MustCompile(`\.\d{3}Z$`).MatchString(m.Time) || time.Since(at).Abs() > 5*time.Second {
		t.Fatalf("time %q (%v) is not now in RFC 3339 UTC with milliseconds", m.Time, err)
	}
	stream.want(t, "id: "+m.ID)
	stream.want(t, "event: message")
	stream.want(t, "data: "+string(posted))

	resp, body := in.request(t, http.MethodGet, "/rooms/lobby/messages", "")
	if want := `{"messages":[` + string(posted) + "],\"has_more\":false}\n"; resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("history = %d %s, want %s", resp.StatusCode, body, want)
	}
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		if resp, body := in.request(t, http.MethodGet, path, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
}

// wantStreamClosed reads s to its end and checks that the server said to
// reconnect.
func wantStreamClosed(t *testing.T, s *lineStream) {
	t.Helper()
	var last []string
	for {
		line, ok := s.next(t)
		if !ok {
			break
		}
		last = append(last, line)
	}
	if len(last) < 2 || !strings.HasPrefix(last[len(last)-2], "retry: ") || !strings.HasPrefix(last[len(last)-1], ": ") {
		t.Fatalf("stream ended with %q, want a retry line and a comment", last)
	}
}

func TestRunEmbeddedRedis(t *testing.T) {
	in := startRun(t)
	checkServes(t, in)
	if out := in.out.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "REDIS_URL is not set") {
		t.Fatalf("no warning about the embedded Redis in the log:\n%s", out)
	}

	open := in.openLines(t, "/rooms/lobby/stream")
	open.next(t)
	start := time.Now()
	if err := in.stop(); err != nil {
		t.Fatalf("run after cancellation: %v, want nil", err)
	}
	t.Logf("run returned %v after cancellation with a stream open", time.Since(start))
	wantStreamClosed(t, open)
	if _, err := http.Get(in.url + "/healthz"); err == nil {
		t.Fatalf("still serving after run returned")
	}
}

func TestRunWithRedisURL(t *testing.T) {
	redis := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+redis.URL(), "KEY_PREFIX=test7:", "LOG_FORMAT=json")
	checkServes(t, in)
	keys, err := redis.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	rooms := 0
	for _, k := range keys {
		if !strings.HasPrefix(k, "test7:") {
			t.Errorf("key %q does not start with KEY_PREFIX test7:", k)
		}
		if strings.HasPrefix(k, "test7:{lobby}:") {
			rooms++
		}
	}
	if rooms == 0 {
		t.Fatalf("no key of room lobby under KEY_PREFIX with its hash tag in %q", keys)
	}
	if strings.Contains(in.out.String(), "REDIS_URL is not set") {
		t.Fatalf("warned about the embedded Redis although REDIS_URL is set")
	}
	if err := in.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// One JSON log line per request, with its status and duration.
	posts := 0
	for line := range strings.SplitSeq(strings.TrimSpace(in.out.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if entry["msg"] == "request" && entry["method"] == "POST" {
			posts++
			if entry["status"] != float64(201) || entry["duration"] == nil {
				t.Fatalf("request log line %s lacks status 201 or duration", line)
			}
		}
	}
	if posts != 1 {
		t.Fatalf("%d request log lines for 1 POST", posts)
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		env  string   // NAME=value
		more []string // other settings the case needs
		want string   // the variable the error must name; NAME if empty
		item string   // what the error must quote as the offending item; the value if empty
	}{
		{env: "HISTORY_MAX=x"},
		{env: "HISTORY_MAX=0"},
		{env: "HISTORY_MAX=-3"},
		{env: "HISTORY_MAX=1000001"},
		{env: "HISTORY_MAX=99999999999999999999"},
		{env: "MAX_MESSAGE_BYTES=0"},
		{env: "MAX_MESSAGE_BYTES=4k"},
		{env: "CLIENT_BUFFER=0"},
		{env: "CLIENT_BUFFER=1.5"},
		{env: "REDIS_TIMEOUT=abc"},
		{env: "REDIS_TIMEOUT=5"},
		{env: "REDIS_TIMEOUT=0s"},
		{env: "REDIS_TIMEOUT=-1s"},
		{env: "REDIS_CLUSTER=maybe"},
		{env: "IDEMPOTENCY_TTL=10ms"},
		{env: "HEARTBEAT_INTERVAL=1ms"},
		{env: "HEARTBEAT_INTERVAL=often"},
		{env: "SSE_RETRY=0s"},
		{env: "STREAM_WRITE_TIMEOUT=0s"},
		{env: "DELIVERY_CHECK_INTERVAL=1ms"},
		{env: "SHUTDOWN_TIMEOUT=0s"},
		{env: "LOG_LEVEL=loud"},
		{env: "LOG_FORMAT=xml"},
		{env: "KEY_PREFIX={x}"},
		{env: "KEY_PREFIX=a}"},
		{env: "ADDR=nowhere"},
		{env: "ADDR=:99999"},
		{env: "REDIS_URL=http://127.0.0.1:6379", item: "http"},
		{env: "REDIS_URL=redis://127.0.0.1:6379/notadb", item: "notadb"},
		{env: "REDIS_URL=redis://:s3cret@127.0.0.1:bad", item: "bad"},
		{env: "REDIS_CLUSTER=true", more: []string{"REDIS_URL=http://127.0.0.1:6379"}, want: "REDIS_URL", item: "http"},
		{env: "POST_RATE=abc"},
		{env: "POST_RATE=1,5"},
		{env: "POST_BURST=lots"},
		{env: "MAX_STREAMS=1e3"},
		{env: "LOG_LEVEL=verbose"},
		{env: "JWT_LEEWAY=30"},
		{env: "IDEMPOTENCY_TTL=1 day"},
		{env: "ROOM_TTL=forever"},
		{env: "BODY_READ_TIMEOUT=-"},
		{env: "TRUSTED_PROXIES=10.0.0.0/8,proxy.local", item: `"proxy.local"`},
		{env: "TRUSTED_PROXIES=10.0.0.0/33", item: `"10.0.0.0/33"`},
		{env: "CORS_ORIGINS=https://a.example,*", item: `"*"`},
		{env: "CORS_ORIGINS=https://chat.example/app", item: `"https://chat.example/app"`},
		{env: "JWT_DEFAULT_ROOMS=read:foo,bar", more: []string{"JWT_SECRET=" + testJWTSecret}, item: `"bar"`},
		{env: "JWT_DEFAULT_ROOMS=read:foo,write:a b", more: []string{"JWT_SECRET=" + testJWTSecret}, item: `"write:a b"`},
		{env: "JWT_DEFAULT_ROOMS=admin:*", more: []string{"JWT_SECRET=" + testJWTSecret}, item: `"admin:*"`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			name, value, _ := strings.Cut(tt.env, "=")
			if tt.want != "" {
				name = tt.want
			}
			environ := append([]string{"ADDR=127.0.0.1:0", tt.env}, tt.more...)
			start := time.Now()
			err := run(t.Context(), nil, environ, io.Discard, func(string) { t.Errorf("listening with %s", tt.env) })
			if err == nil {
				t.Fatalf("run accepted %s", tt.env)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("run took %v to refuse %s", d, tt.env)
			}
			if !errors.As(err, new(configError)) {
				t.Fatalf("run with %s = %v, want a configError (exit status 2)", tt.env, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, name+":") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q is not one line starting with %s", msg, name)
			}
			if strings.Contains(value, "s3cret") && strings.Contains(msg, "s3cret") {
				t.Fatalf("error %q shows the Redis password", msg)
			}
			item := tt.item
			if item == "" {
				item = strconv.Quote(value)
			}
			if !strings.Contains(msg, item) {
				t.Fatalf("error %q does not name the offending item %s", msg, item)
			}
			for _, internal := range []string{"strconv.", "slog:", "time:", "parsing ", "reflect", "redis:", "env:"} {
				if strings.Contains(msg, internal) {
					t.Fatalf("error %q speaks Go (%q)", msg, internal)
				}
			}
		})
	}
	if err := run(t.Context(), []string{"serve"}, nil, io.Discard, nil); !errors.As(err, new(configError)) {
		t.Fatalf("run with an argument = %v, want a configError", err)
	}
}

// TestRunWarnsAboutIneffectiveSettings checks that a setting without
// effect is a warning at start that names it.
func TestRunWarnsAboutIneffectiveSettings(t *testing.T) {
	in := startRun(t, "JWT_ISSUER=https://login.example", "JWT_DEFAULT_ROOMS=read:*", "POST_RATE=0", "POST_BURST=3")
	log := in.out.String()
	for _, name := range []string{"JWT_ISSUER", "JWT_DEFAULT_ROOMS", "POST_BURST"} {
		if !strings.Contains(log, "level=WARN msg=\""+name+" is set but has no effect") {
			t.Errorf("no warning that %s has no effect in\n%s", name, log)
		}
	}
	if strings.Contains(log, "JWT_AUDIENCE") {
		t.Errorf("warned about JWT_AUDIENCE, which is not set:\n%s", log)
	}
}

func TestExitStatus(t *testing.T) {
	t.Setenv("ADDR", "127.0.0.1:0")
	t.Setenv("HISTORY_MAX", "many")
	if got := runMain(nil); got != 2 {
		t.Fatalf("exit status with a bad setting = %d, want 2", got)
	}
	t.Setenv("HISTORY_MAX", "10")
	t.Setenv("REDIS_URL", "redis://:wrong-password@"+redistest.Start(t, "--requirepass", "right-password").Addr)
	t.Setenv("REDIS_TIMEOUT", "200ms")
	if got := runMain(nil); got != 1 {
		t.Fatalf("exit status with Redis refusing the password = %d, want 1", got)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	for _, flag := range []string{"-h", "-help", "--help"} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{flag}, []string{"HISTORY_MAX=x"}, &out, nil); err != nil {
			t.Fatalf("run %s: %v", flag, err)
		}
		lines := map[string]string{}
		for line := range strings.SplitSeq(out.String(), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				lines[f[0]] = line
			}
		}
		typ := reflect.TypeFor[config]()
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, def := f.Tag.Get("env"), f.Tag.Get("envDefault")
			if def == "" {
				def = `""`
			}
			line, ok := lines[name]
			if !ok || f.Tag.Get("help") == "" {
				t.Fatalf("%s: no help for %s in\n%s", flag, name, out.String())
			}
			if !strings.Contains(line, "(default "+def+")") || !strings.Contains(line, f.Tag.Get("help")) {
				t.Fatalf("%s: line %q lacks the meaning or default %s", flag, line, def)
			}
		}
		for _, name := range []string{"ADDR", "REDIS_URL", "KEY_PREFIX", "HISTORY_MAX", "MAX_MESSAGE_BYTES",
			"HEARTBEAT_INTERVAL", "CLIENT_BUFFER", "SHUTDOWN_TIMEOUT", "LOG_LEVEL"} {
			if _, ok := lines[name]; !ok {
				t.Fatalf("%s does not list %s", flag, name)
			}
		}
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers: a Redis that hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestRunStartsBeforeRedis checks that roomcast serves while Redis does
// not answer yet (it loses no race with Redis in a plain `compose up`) and
// works fully, without a restart, once Redis is there.
func TestRunStartsBeforeRedis(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		addr := closedPort(t)
		in := startRun(t, "REDIS_URL=redis://user:s3cret@"+addr+"/0", "REDIS_TIMEOUT=200ms")
		wantNotReady(t, in)
		log := in.out.String()
		if !strings.Contains(log, "redis does not answer") || !strings.Contains(log, addr) || strings.Contains(log, "s3cret") {
			t.Fatalf("log does not say that Redis at %s does not answer (without its password):\n%s", addr, log)
		}
		redistest.StartAt(t, addr, "--user", "user", "on", ">s3cret", "~*", "&*", "+@all")
		awaitReady(t, in)
		checkServes(t, in)
		if log := in.out.String(); !strings.Contains(log, "redis answers") {
			t.Fatalf("log does not say that Redis answers now:\n%s", log)
		}
	})
	t.Run("hanging server", func(t *testing.T) {
		start := time.Now()
		in := startRun(t, "REDIS_URL=redis://"+silentServer(t), "REDIS_TIMEOUT=200ms")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v to listen with a hanging Redis", d)
		}
		wantNotReady(t, in)
	})
}

// wantNotReady checks what a roomcast without Redis answers: alive, not
// ready, posts 503 with Retry-After, streams a retry advice that ends.
func wantNotReady(t *testing.T, in *instance) {
	t.Helper()
	if resp, body := in.request(t, http.MethodGet, "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d %s, want 200", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodGet, "/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d %s, want 503", resp.StatusCode, body)
	}
	wantUnavailable(t, in, 0, 5*time.Second)
	wantStreamClosed(t, in.openLines(t, "/rooms/r/stream"))
}

// awaitReady polls /readyz until it answers 200.
func awaitReady(t *testing.T, in *instance) {
	t.Helper()
	waitFor(t, "/readyz to answer 200 once Redis answers", func() bool {
		resp, _ := in.request(t, http.MethodGet, "/readyz", "")
		return resp.StatusCode == http.StatusOK
	})
}

// TestRunRedisDown checks the wiring of main's Redis client: once Redis
// dies, or hangs, posts and history reads fail with 503 within about
// REDIS_TIMEOUT instead of hanging, and streams answer 200 and close.
func TestRunRedisDown(t *testing.T) {
	t.Run("killed", func(t *testing.T) {
		redis := redistest.Start(t)
		in := startRun(t, "REDIS_URL="+redis.URL())
		in.postMessage(t, "r", "before")
		redis.Kill()
		wantUnavailable(t, in, 0, 3*time.Second)
		s := in.openLines(t, "/rooms/r/stream")
		wantStreamClosed(t, s)
	})
	t.Run("hanging", func(t *testing.T) {
		redis := redistest.Start(t)
		p := startProxy(t, redis.Addr)
		in := startRun(t, "REDIS_URL=redis://"+p.addr(), "REDIS_TIMEOUT=300ms")
		in.postMessage(t, "r", "before")
		p.freeze()
		// At least REDIS_TIMEOUT shows the request did wait on the hung
		// Redis; well under go-redis's default 3s read timeout shows that
		// REDIS_TIMEOUT bounded it.
		wantUnavailable(t, in, 300*time.Millisecond, 2*time.Second)
		p.thaw()
	})
}

// wantUnavailable checks that posts and history reads fail with 503 and
// Retry-After after a time from atLeast to within.
func wantUnavailable(t *testing.T, in *instance, atLeast, within time.Duration) {
	t.Helper()
	for _, tt := range []struct{ method, path, body string }{
		{method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"while down"}`},
		{method: http.MethodGet, path: "/rooms/r/messages"},
	} {
		start := time.Now()
		resp, body := in.request(t, tt.method, tt.path, tt.body, "Content-Type", "application/json")
		elapsed := time.Since(start)
		t.Logf("%s %s: %d after %v", tt.method, tt.path, resp.StatusCode, elapsed)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s with Redis down: %d %s, want a 503 problem", tt.method, tt.path, resp.StatusCode, body)
		}
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
			t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
		}
		if elapsed < atLeast || elapsed > within {
			t.Fatalf("%s %s took %v to fail, want %v to %v", tt.method, tt.path, elapsed, atLeast, within)
		}
	}
}

// proxy forwards TCP connections to a server; while frozen it holds every
// byte in both directions without closing anything, like a server that
// hangs or a network that drops packets.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn
	thawed chan struct{} // closed while not frozen
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, thawed: make(chan struct{})}
	close(p.thawed)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(up, c) })
		p.wg.Go(func() { p.pipe(c, up) })
	}
}

// pipe copies src to dst, holding each chunk while the proxy is frozen.
func (p *proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			thawed := p.thawed
			p.mu.Unlock()
			<-thawed
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.thawed = make(chan struct{})
}

func (p *proxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

func (p *proxy) close() {
	p.thaw()
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
