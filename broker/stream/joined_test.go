package stream_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// oneRoom is a hub with one new, empty room, whose listener the test
// delivers to itself.
type oneRoom struct{ listener broker.Listener }

func (r *oneRoom) Listen(_ context.Context, _ string, l broker.Listener) (chat.ID, error) {
	r.listener = l
	return chat.ID{}, nil
}

func (r *oneRoom) Unlisten(string, broker.Listener) bool { return true }

func (r *oneRoom) Since(context.Context, string, chat.ID) (broker.Page, error) {
	return broker.Page{}, nil
}

// countedConn counts the writes to a connection that, like TLS, has no
// writev of its own.
type countedConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestFramesOfARoundShareOneWriteWithoutWritev checks that a connection
// without writev (TLS, where each write is a record and a system call)
// gets a round's frames in one write, not one write per frame.
func TestFramesOfARoundShareOneWriteWithoutWritev(t *testing.T) {
	rooms := &oneRoom{}
	e := stream.New(stream.Options{Rooms: rooms, Frames: frames{}, HeartbeatInterval: time.Minute,
		StreamWriteTimeout: 5 * time.Second})
	s, err := e.Open(t.Context(), stream.Spec{Rooms: []stream.Room{{Name: "r"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Delivered before Attach: queued, so that the first round writes the
	// preamble and all of them.
	var want strings.Builder
	want.WriteString("retry: 1000\n\n")
	for seq := range int64(3) {
		idLine, body := "id: e-"+strconv.FormatInt(seq+1, 10)+"\n", "data: {}\n\n"
		want.WriteString(idLine + body)
		rooms.listener.Deliver(&broker.Message{Room: "r", ID: chat.ID{Epoch: "e", Seq: seq + 1},
			IDLine: []byte(idLine), Body: []byte(body)})
	}
	client, server := net.Pipe()
	conn := &countedConn{Conn: server}
	s.Attach(conn, []byte("retry: 1000\n\n"))
	defer func() {
		client.Close()
		<-s.Done()
	}()
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(bufio.NewReader(client), got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("stream wrote %q, want %q", got, want.String())
	}
	if n := conn.writes.Load(); n != 1 {
		t.Fatalf("%d writes for a round of 4 frames, want 1", n)
	}
}
