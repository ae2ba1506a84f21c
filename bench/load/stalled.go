package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"time"
)

// stalledSet is streams that asked for a room's stream and never read.
type stalledSet struct{ conns []net.Conn }

// openStalled opens n streams, stream i on room i%len(rooms), that never
// read a byte: each sends its request and nothing else, over a socket with
// a small receive buffer so that the server's writes soon block.
func openStalled(ctx context.Context, base *url.URL, rooms []string, n int) (*stalledSet, error) {
	set := &stalledSet{}
	dialer := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var sockErr error
		err := c.Control(func(fd uintptr) {
			sockErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return sockErr
	}}
	for i := range n {
		conn, err := dialer.DialContext(ctx, "tcp", base.Host)
		if err != nil {
			return set, fmt.Errorf("stalled stream %d: %w", i, err)
		}
		set.conns = append(set.conns, conn)
		req := fmt.Sprintf("GET %s/rooms/%s/stream HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
			base.Path, rooms[i%len(rooms)], base.Host)
		if _, err := conn.Write([]byte(req)); err != nil {
			return set, fmt.Errorf("stalled stream %d: %w", i, err)
		}
	}
	return set, nil
}

func (s *stalledSet) close() {
	for _, c := range s.conns {
		c.Close()
	}
}
