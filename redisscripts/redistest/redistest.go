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
	"strings"
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
//
// redis-server cannot be handed a listening socket, so a port found free
// may be taken by another process before redis-server binds it; Start then
// sees redis-server exit and tries another port.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	const attempts = 5
	for i := 1; ; i++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("find a free port: %v", err)
		}
		s := newServer(tb, port, args)
		err = s.start()
		if err == nil {
			tb.Cleanup(s.Kill)
			return s
		}
		if i == attempts {
			tb.Fatalf("%v (tried %d ports)", err, attempts)
		}
	}
}

// StartAt starts a redis-server on the given loopback address, like Start;
// for a test that points something at an address before Redis is there.
func StartAt(tb testing.TB, addr string, args ...string) *Server {
	tb.Helper()
	_, p, err := net.SplitHostPort(addr)
	port, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		tb.Fatalf("redistest.StartAt(%q): not host:port", addr)
	}
	s := newServer(tb, port, args)
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Kill)
	return s
}

func newServer(tb testing.TB, port int, args []string) *Server {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server is required under CI=true: %v", err)
		}
		tb.Skipf("redis-server not installed: %v", err)
	}
	return &Server{
		tb:   tb,
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:  tb.TempDir(),
		args: append([]string{
			path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--loglevel", "warning",
		}, args...),
	}
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
	if err := s.start(); err != nil {
		s.tb.Fatal(err)
	}
}

// start runs redis-server and waits until it answers. It makes sure the
// answer comes from this process, not from another server that holds the
// port; an error means the process did not come up.
func (s *Server) start() error {
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() { _ = cmd.Process.Kill(); <-done }

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, Password: s.password()})
	defer c.Close()
	want := "process_id:" + strconv.Itoa(cmd.Process.Pid) + "\r\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil && strings.Contains(info, want) {
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start (port taken?)", s.Addr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("redis-server on %s not answering: %v", s.Addr, err)
		}
	}
}

// password is the --requirepass argument, if any.
func (s *Server) password() string {
	for i, a := range s.args[:len(s.args)-1] {
		if a == "--requirepass" {
			return s.args[i+1]
		}
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
