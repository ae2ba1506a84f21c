package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

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
	if want := `{"messages":[` + string(posted) + `],"has_more":false,"position":"` + m.ID + "\"}\n"; resp.StatusCode != http.StatusOK || string(body) != want {
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
