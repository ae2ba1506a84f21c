// Package redistest starts real redis-server processes for tests, each on
// its own free loopback port, so that a test can also kill and restart one.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by one test.
type Server struct {
	tb   testing.TB
	Addr string // host:port
	dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server on a free port and stops it when the test
// ends. Extra arguments are passed to redis-server (e.g. "--appendonly",
// "yes"). Without redis-server the test is skipped, except under CI=true,
// where it fails.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server is required under CI=true: %v", err)
		}
		tb.Skipf("redis-server not installed: %v", err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	s := &Server{
		tb:   tb,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:  tb.TempDir(),
		args: append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--loglevel", "warning",
		}, args...),
	}
	s.args = append([]string{path}, s.args...)
	s.start()
	tb.Cleanup(s.Kill)
	return s
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// Kill stops the server with SIGKILL and waits until it has exited. It does
// nothing if the server is not running.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Running reports whether the server was started and not killed.
func (s *Server) Running() bool { return s.cmd != nil }

// Restart starts the server again on the same port, with the same data
// directory (and so the same append-only file, if any).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.start()
}

func (s *Server) start() {
	s.tb.Helper()
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			s.tb.Fatalf("redis-server on %s exited at start", s.Addr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redis-server on %s not answering: %v", s.Addr, err)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
