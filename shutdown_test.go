package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roomcast/redisscripts/redistest"
)

// process is a roomcast process started from the test binary.
type process struct {
	cmd  *exec.Cmd
	url  string
	exit chan error
}

var listeningLine = regexp.MustCompile(`roomcast listening" addr=(\S+)`)

func startProcess(t *testing.T, redisURL string, environ ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ROOMCAST_AS_PROCESS=1", "ADDR=127.0.0.1:0",
		"REDIS_URL="+redisURL, "SHUTDOWN_TIMEOUT=5s", "SSE_RETRY=200ms")
	cmd.Env = append(cmd.Env, environ...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exit: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listeningLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if testing.Verbose() {
				fmt.Fprintln(os.Stderr, "roomcast:", sc.Text())
			}
		}
		p.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exit
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatalf("roomcast process did not start listening")
	}
	return p
}

func TestSIGTERMLosesNoAcknowledgedMessage(t *testing.T) {
	redis := redistest.Start(t)
	first := startProcess(t, redis.URL())

	// A stream that will be cut by the shutdown.
	streamCtx, cancelStream := context.WithCancel(t.Context())
	defer cancelStream()
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, first.url+"/rooms/deploy/stream", nil)
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan []string, 1)
	go func() { streamed <- readStream(resp.Body) }()

	// Posters keep posting through the shutdown; only 201s count as sent.
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var posters sync.WaitGroup
	for range 4 {
		posters.Add(1)
		go func() {
			defer posters.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := checkedClient.Post(first.url+"/rooms/deploy/messages", "application/json", strings.NewReader(`{"text":"m"}`))
				if err != nil {
					if strings.Contains(err.Error(), "contract:") {
						t.Errorf("post during shutdown: %v", err)
					}
					return // the listener is gone
				}
				body, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode == http.StatusCreated {
					var m struct{ ID string }
					_ = json.Unmarshal(body, &m)
					mu.Lock()
					acked = append(acked, m.ID)
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "some posts acknowledged", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 })

	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first.exit:
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("roomcast exited with %v, want status 0", err)
		}
		first.exit <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("roomcast did not exit within 10s of SIGTERM")
	}
	close(stop)
	posters.Wait()

	lines := <-streamed
	if tail := lines[max(0, len(lines)-4):]; len(tail) < 4 || !strings.HasPrefix(tail[0], "retry: ") {
		t.Fatalf("stream did not end with a retry advice: %q", tail)
	}
	lastID := ""
	for _, l := range lines {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			lastID = id
		}
	}

	// The client reconnects to another instance with its Last-Event-ID and
	// must receive every acknowledged message it had not seen.
	second := startProcess(t, redis.URL())
	seen := map[string]bool{}
	for _, l := range lines {
		if id, ok := strings.CutPrefix(l, "id: "); ok {
			seen[id] = true
		}
	}
	page, err := checkedClient.Get(second.url + "/rooms/deploy/messages?limit=200&after=" + lastID)
	if err != nil {
		t.Fatal(err)
	}
	var rest struct{ Messages []struct{ ID string } }
	_ = json.NewDecoder(page.Body).Decode(&rest)
	page.Body.Close()
	for _, m := range rest.Messages {
		seen[m.ID] = true
	}
	for _, id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged message %s neither streamed nor in history after %s", id, lastID)
		}
	}
	t.Logf("%d posts acknowledged; stream had %d events before shutdown", len(acked), len(seen)-len(rest.Messages))
}

// readStream returns every line of an event stream until it ends.
func readStream(body io.ReadCloser) []string {
	defer body.Close()
	var lines []string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
