package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// serveReaders is the child's side: it listens on 127.0.0.1, tells its
// parent the address ("addr HOST:PORT"), accepts cfg.conns connections and
// drains each in its own goroutine, says "ready" once all are accepted, and
// ends when its parent closes stdin, when ctx ends or after cfg.lifetime.
func serveReaders(ctx context.Context, cfg config, stdin io.Reader, stdout io.Writer) error {
	if err := raiseFileLimit(uint64(cfg.conns + fdMargin)); err != nil {
		return err
	}
	lifetime := cfg.lifetime
	if lifetime == 0 {
		lifetime = childLifetime(cfg.runs, cfg.duration)
	}
	ctx, cancel := context.WithTimeout(ctx, lifetime)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin) // returns when the parent closes the pipe or exits
		cancel()
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	if _, err := fmt.Fprintf(stdout, "addr %s\n", ln.Addr()); err != nil {
		return err
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	defer func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for range cfg.conns {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
	}
	if _, err := fmt.Fprintln(stdout, "ready"); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// readers is the parent's handle on the readers' child.
type readers struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
	addr  string
}

// startReaders starts this program again as the readers' child and returns
// once it listens.
func startReaders(ctx context.Context, cfg config) (*readers, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start the readers: %w", err)
	}
	lifetime := childLifetime(cfg.runs, cfg.duration)
	cmd := exec.CommandContext(ctx, self, "-reader",
		"-conns", strconv.Itoa(cfg.conns), "-lifetime", lifetime.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the readers: %w", err)
	}
	r := &readers{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	line, err := r.await("addr ", 10*time.Second)
	if err != nil {
		r.stop()
		return nil, err
	}
	r.addr = line
	return r, nil
}

// await reads the child's next line, which must start with prefix, and
// returns the rest of it.
func (r *readers) await(prefix string, timeout time.Duration) (string, error) {
	type read struct {
		line string
		ok   bool
	}
	got := make(chan read, 1)
	go func() {
		ok := r.lines.Scan()
		got <- read{r.lines.Text(), ok}
	}()
	select {
	case l := <-got:
		rest, found := strings.CutPrefix(l.line, prefix)
		if !l.ok || !found {
			return "", fmt.Errorf("readers' child: got %q, want %q…", l.line, prefix)
		}
		return rest, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("readers' child: no %q line within %v", strings.TrimSpace(prefix), timeout)
	}
}

// stop ends the child (closing its stdin is its signal) and waits for it;
// CommandContext kills it if the context ends first.
func (r *readers) stop() {
	r.stdin.Close()
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}
