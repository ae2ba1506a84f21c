package stream

import (
	"net"
	"sync"
)

// joinedConn is an owned connection without writev, such as TLS, where
// each Write becomes records and a system call of its own: a round's
// frames are copied into chunks of a TLS record's size, each written once.
type joinedConn struct{ net.Conn }

// recordSize is the largest TLS record's payload.
const recordSize = 16 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, 0, recordSize); return &b }}

// joinWrites wraps conn unless it writes net.Buffers with one writev.
func joinWrites(conn net.Conn) net.Conn {
	if _, ok := conn.(*net.TCPConn); ok {
		return conn
	}
	return joinedConn{conn}
}

func (c joinedConn) writeBuffers(bufs net.Buffers) error {
	if len(bufs) == 1 {
		_, err := c.Write(bufs[0])
		return err
	}
	p := chunks.Get().(*[]byte)
	defer chunks.Put(p)
	chunk := (*p)[:0]
	for _, b := range bufs {
		for len(b) > 0 {
			n := copy(chunk[len(chunk):cap(chunk)], b)
			chunk, b = chunk[:len(chunk)+n], b[n:]
			if len(chunk) == cap(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return err
				}
				chunk = chunk[:0]
			}
		}
	}
	if len(chunk) == 0 {
		return nil
	}
	_, err := c.Write(chunk)
	return err
}
