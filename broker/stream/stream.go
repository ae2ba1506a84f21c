package stream

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
)

// Conn is where a handler-owned stream writes (HTTP/2, or a writer that
// cannot be hijacked): a ResponseWriter with its deadline and flush.
type Conn interface {
	io.Writer
	SetWriteDeadline(t time.Time) error
	Flush() error
}

// Stream is one client's event stream: it writes each message of its rooms
// after the room's position exactly once, in order, then live ones.
type Stream struct {
	e         *Engine
	spec      Spec
	done      chan struct{}
	positions func(room int) chat.ID // positionOf, for spec.Cursor

	// Only the stream's own goroutine uses these.
	w        io.Writer
	out      net.Buffers // what is being written
	deadline time.Time
	slot     int

	lastWrite atomic.Int64 // unix nanoseconds

	mu      sync.Mutex
	rooms   []*roomState
	conn    net.Conn      // an owned connection; nil before Attach and when handler-owned
	wakeCh  chan struct{} // wakes a stream parked on it
	woken   bool
	parked  park
	lastRun time.Time // when the goroutine last had work
	listen  bool      // the wheel found the stream idle: park in a read
	active  bool      // in the wheel's set of streams parked on their channel
	queue   net.Buffers
	spare   net.Buffers
	queued  int // frames in queue: a message counts once, id line and body
	state   state
	expiry  *time.Timer
	started bool // Attach or Serve was called
}

type state int

// park is how a stream's goroutine waits.
type park int

const (
	running   park = iota
	onChannel      // busy stream: woken through wakeCh, no system call
	inRead         // idle stream: a one-byte read that also notices the client leaving
)

const (
	open   state = iota
	ending       // the goodbye is queued; the stream closes once it is written
	closed
)

// roomState is a stream's position in one room and the listener the hub
// delivers that room to.
type roomState struct {
	s         *Stream
	index     int // in s.rooms
	name      string
	pos       chat.ID // the last message the client has
	behind    bool    // a catch-up from history is due; live messages wait in held
	held      []*broker.Message
	rounds    int // catch-ups that ended with held messages still not following
	listening bool
	left      bool // Leave took the room out of the stream
}

var _ broker.Listener = (*roomState)(nil)

// Deliver is called by the hub, with its lock held, for each message of
// the room.
func (r *roomState) Deliver(m *broker.Message) bool {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != open || r.left {
		return true
	}
	if m.Ephemeral() {
		body := m.Body
		if m.Reader != "" && m.Reader == s.spec.User {
			body = m.OwnBody
		}
		if body != nil && s.started && s.queued < s.e.opts.ClientBuffer {
			s.enqueueLocked(body, nil)
		}
		return true
	}
	if r.behind {
		if len(r.held) >= s.e.opts.ClientBuffer {
			return false
		}
		r.held = append(r.held, m)
		return true
	}
	switch {
	case m.ID.Covered(r.pos):
	case m.ID.Follows(r.pos):
		if s.queued >= s.e.opts.ClientBuffer {
			return false
		}
		s.writeMessageLocked(r, m)
	default:
		r.behind = true
		r.held = append(r.held, m)
		s.wakeLocked()
	}
	return true
}

// Dropped is called by the hub, with its lock held, when it dropped the
// room's listener: the stream ends, telling the client why.
func (r *roomState) Dropped(err error) {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r.listening = false
	s.endLocked(err)
}

// writeMessageLocked queues m, which follows r's position: with the id
// line the hub encoded, or, in a stream of several rooms, with the id line
// of the stream's cursor; the body is the hub's either way.
func (s *Stream) writeMessageLocked(r *roomState, m *broker.Message) {
	r.pos = m.ID
	if s.spec.Cursor == nil {
		s.enqueueLocked(m.IDLine, m.Body)
	} else {
		line, err := s.spec.Cursor.Line(r.index, s.positions)
		if err != nil {
			s.e.log.Warn("composite cursor not updated", "room", r.name, "err", err)
		}
		s.enqueueLocked(line, m.Body)
	}
	if s.spec.User != "" && m.Author() == s.spec.User {
		// Posting moved the user's read marker to the message: their
		// badges follow without a read event published per post.
		s.enqueueLocked(s.e.opts.Frames.Event(chat.EventRead, ownReadData(r.name, m.ID)), nil)
	}
}

// ownReadData is a read event's data for the stream's own user.
func ownReadData(room string, id chat.ID) []byte {
	// Room ids and message ids need no JSON escapes.
	return []byte(`{"room":"` + room + `","id":"` + id.String() + `"}`)
}

// positionOf is the position of room i, for spec.Cursor; s.mu is held.
func (s *Stream) positionOf(i int) chat.ID { return s.rooms[i].pos }

// enqueueLocked queues one frame, written as its parts head and body, of
// which either may be nil.
func (s *Stream) enqueueLocked(head, body []byte) {
	if head != nil {
		s.queue = append(s.queue, head)
	}
	if body != nil {
		s.queue = append(s.queue, body)
	}
	s.queued++
	s.wakeLocked()
}

// aLongTimeAgo is a read deadline that wakes a parked stream at once.
var aLongTimeAgo = time.Unix(1, 0)

// wakeLocked makes the stream's goroutine look at its queue.
func (s *Stream) wakeLocked() {
	if !s.started || s.woken {
		return
	}
	s.woken = true
	switch s.parked {
	case onChannel:
		select {
		case s.wakeCh <- struct{}{}:
		default:
		}
	case inRead:
		_ = s.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// endLocked queues the goodbye for reason and makes the stream close once
// it is written.
func (s *Stream) endLocked(reason error) {
	if s.state != open {
		return
	}
	s.state = ending
	s.queue = append(s.queue, s.e.opts.Frames.Goodbye(reason))
	s.wakeLocked()
}

// End writes frame (nil for none), then the goodbye for reason, and ends
// the stream. It does nothing to a stream that is already ending, and
// reports whether it ended this one.
func (s *Stream) End(frame []byte, reason error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != open {
		return false
	}
	if frame != nil {
		s.enqueueLocked(frame, nil)
	}
	s.endLocked(reason)
	return true
}

// Leave takes room out of the stream for good: it writes frame (nil for
// none), stops listening to the room and drops what of it is still held.
// A stream left with no room ends with reason. Leave reports whether the
// stream had the room; it does nothing to a stream that is ending.
func (s *Stream) Leave(room string, frame []byte, reason error) bool {
	s.mu.Lock()
	var r *roomState
	remaining := 0
	for _, rs := range s.rooms {
		switch {
		case rs.left:
		case rs.name == room && r == nil:
			r = rs
		default:
			remaining++
		}
	}
	if r == nil || s.state != open {
		s.mu.Unlock()
		return false
	}
	r.left, r.behind, r.held = true, false, nil
	listening := r.listening
	r.listening = false
	if frame != nil {
		s.enqueueLocked(frame, nil)
	}
	if remaining == 0 {
		s.endLocked(reason)
	}
	s.mu.Unlock()
	// Not under s.mu: the hub holds its own lock when it calls Deliver.
	if listening {
		s.e.opts.Rooms.Unlisten(room, r)
	}
	return true
}

// Rooms returns the names of the rooms the stream carries, those it left
// excluded.
func (s *Stream) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.rooms))
	for _, r := range s.rooms {
		if !r.left {
			names = append(names, r.name)
		}
	}
	return names
}

// Attach hands an owned connection to the stream: the engine writes
// preamble (the response headers and the opening retry advice) first, then
// the stream, and closes conn when the stream ends. It returns at once.
// conn's buffered reader must be dropped by the caller: the engine reads
// conn only to notice the client leaving.
func (s *Stream) Attach(conn net.Conn, preamble []byte) {
	_ = conn.SetDeadline(time.Time{})
	s.mu.Lock()
	s.conn, s.w = conn, joinWrites(conn)
	s.wakeCh = make(chan struct{}, 1)
	s.startLocked(preamble)
	s.mu.Unlock()
	go s.runOwned()
}

// Serve runs the stream on a connection the caller keeps (handler-owned,
// e.g. HTTP/2): it writes preamble, then the stream, and returns when the
// stream ends or ctx ends (the client left).
func (s *Stream) Serve(ctx context.Context, w Conn, preamble []byte) {
	s.mu.Lock()
	s.w = w
	s.wakeCh = make(chan struct{}, 1)
	s.parked = onChannel
	s.startLocked(preamble)
	s.mu.Unlock()
	defer s.finish()
	for s.work() {
		s.mu.Lock()
		woken := s.woken
		s.parked = onChannel
		s.mu.Unlock()
		if woken {
			continue
		}
		select {
		case <-s.wakeCh:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Stream) startLocked(preamble []byte) {
	s.started = true
	s.queue = append(net.Buffers{preamble}, s.queue...)
	s.queued++
	if !s.spec.Expires.IsZero() {
		s.expiry = time.AfterFunc(time.Until(s.spec.Expires), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.endLocked(ErrExpired)
		})
	}
	s.lastWrite.Store(time.Now().UnixNano())
	s.slot = s.e.wheel.add(s)
}

// Abort undoes Open for a stream that is not attached.
func (s *Stream) Abort() {
	for _, r := range s.rooms {
		s.e.opts.Rooms.Unlisten(r.name, r)
	}
}

// Done is closed once the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// ping queues a heartbeat; writing it is also how an owned stream whose
// client vanished without closing is noticed.
func (s *Stream) ping() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == open && s.queued == 0 {
		s.enqueueLocked(s.e.opts.Frames.Ping(), nil)
	}
}
