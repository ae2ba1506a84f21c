package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/redisscripts/redistest"
)

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
