package stream

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
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
	e    *Engine
	spec Spec
	done chan struct{}

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
	queued  int
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
	name      string
	pos       chat.ID // the last message the client has
	behind    bool    // a catch-up from history is due; live messages wait in held
	held      []*broker.Message
	rounds    int // catch-ups that ended with held messages still not following
	listening bool
}

var _ broker.Listener = (*roomState)(nil)

// Deliver is called by the hub, with its lock held, for each message of
// the room.
func (r *roomState) Deliver(m *broker.Message) bool {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != open {
		return true
	}
	if m.Ephemeral() {
		if s.started && s.queued < s.e.opts.MaxQueue {
			s.enqueueLocked(m.Frame)
		}
		return true
	}
	if r.behind {
		if len(r.held) >= s.e.opts.MaxQueue {
			return false
		}
		r.held = append(r.held, m)
		return true
	}
	switch {
	case m.ID.Covered(r.pos):
	case m.ID.Follows(r.pos):
		if s.queued >= s.e.opts.MaxQueue {
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

func (s *Stream) writeMessageLocked(r *roomState, m *broker.Message) {
	r.pos = m.ID
	if s.spec.IDLine == nil {
		s.enqueueLocked(m.Frame)
		return
	}
	s.enqueueLocked(s.spec.IDLine(r.name, m, s.positionLocked))
	s.enqueueLocked(s.spec.WithoutID(m.Frame))
}

func (s *Stream) positionLocked(room string) chat.ID {
	for _, r := range s.rooms {
		if r.name == room {
			return r.pos
		}
	}
	return chat.ID{}
}

func (s *Stream) enqueueLocked(b []byte) {
	s.queue = append(s.queue, b)
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
	if s.e.opts.Goodbye != nil {
		s.queue = append(s.queue, s.e.opts.Goodbye(reason))
	}
	s.wakeLocked()
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

// runOwned is the goroutine of an owned stream. A busy stream waits on a
// channel between writes: waking it costs no system call. A stream the
// wheel found idle waits in a one-byte read instead, which also notices a
// client that leaves, and is woken by a read deadline in the past.
func (s *Stream) runOwned() {
	defer s.finish()
	var b [1]byte
	for s.work() {
		s.mu.Lock()
		if s.woken {
			s.mu.Unlock()
			continue
		}
		listen, known := s.listen, s.active
		if listen {
			s.parked = inRead
		} else {
			s.parked, s.active = onChannel, true
		}
		s.mu.Unlock()
		if !listen {
			if !known {
				s.e.wheel.busy(s)
			}
			<-s.wakeCh
			continue
		}
		_, err := s.conn.Read(b[:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			_ = s.conn.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			return // the client left
		}
		// A client has nothing to send on an event stream: ignore it.
	}
}

// settle is called by the wheel for a stream parked on its channel that
// has had nothing to write for a while: it then waits in a read, which
// notices a client that leaves.
func (s *Stream) settle(quiet time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parked != onChannel || s.lastRun.After(quiet) {
		return false
	}
	s.listen, s.active = true, false
	if !s.woken {
		s.woken = true
		select {
		case s.wakeCh <- struct{}{}:
		default:
		}
	}
	return true
}

// work catches rooms up and writes what is queued, until nothing is left;
// it returns false once the stream has ended.
func (s *Stream) work() bool {
	if d := s.e.opts.FlushDelay; d > 0 {
		time.Sleep(d) // let more frames join this write
	}
	for {
		s.mu.Lock()
		s.woken, s.parked = false, running
		if s.state == closed {
			s.mu.Unlock()
			return false
		}
		if r := s.behindLocked(); r != nil && len(s.queue) == 0 {
			s.mu.Unlock()
			if err := s.catchUp(r); err != nil {
				s.e.log.Warn("stream ended", "room", r.name, "err", err)
				s.mu.Lock()
				s.endLocked(err)
				s.mu.Unlock()
			}
			continue
		}
		bufs := s.queue
		s.queue, s.spare, s.queued = s.spare, nil, 0
		ending := s.state == ending
		if len(bufs) > 0 {
			s.lastRun, s.listen = time.Now(), false
		}
		s.mu.Unlock()
		if len(bufs) == 0 {
			return !ending
		}
		keep := bufs[:0]
		s.out = bufs
		err := s.write()
		s.mu.Lock()
		clear(keep[:cap(keep)])
		s.spare = keep
		s.mu.Unlock()
		if err != nil {
			return false
		}
	}
}

// behindLocked returns a room that needs a catch-up, unless the stream is
// ending.
func (s *Stream) behindLocked() *roomState {
	if s.state != open {
		return nil
	}
	for _, r := range s.rooms {
		if r.behind {
			return r
		}
	}
	return nil
}

// write sends s.out with one writev (or as few writes as a connection
// without writev allows), renewing the write deadline only when less than
// half of it is left.
func (s *Stream) write() error {
	now := time.Now()
	if t := s.e.opts.WriteTimeout; t > 0 && s.deadline.Sub(now) < t/2 {
		s.deadline = now.Add(t)
		if c, ok := s.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
			_ = c.SetWriteDeadline(s.deadline)
		}
	}
	var err error
	if j, ok := s.w.(joinedConn); ok {
		err = j.writeBuffers(s.out)
	} else {
		_, err = s.out.WriteTo(s.w)
	}
	if c, ok := s.w.(Conn); ok {
		if err == nil {
			err = c.Flush()
		}
		// An HTTP/2 stream is reset when its deadline passes, even idle.
		_ = c.SetWriteDeadline(time.Time{})
		s.deadline = time.Time{}
	}
	s.lastWrite.Store(now.UnixNano())
	return err
}

// finish closes the stream: its connection, its rooms, its timers.
func (s *Stream) finish() {
	s.mu.Lock()
	s.state = closed
	if s.expiry != nil {
		s.expiry.Stop()
	}
	var rooms []*roomState
	for _, r := range s.rooms {
		if r.listening {
			r.listening = false
			rooms = append(rooms, r)
		}
	}
	s.queue, s.spare = nil, nil
	s.mu.Unlock()
	if s.conn != nil {
		_ = s.conn.Close()
	}
	for _, r := range rooms {
		s.e.opts.Rooms.Unlisten(r.name, r)
	}
	s.e.wheel.remove(s)
	close(s.done)
	if s.spec.OnEnd != nil {
		s.spec.OnEnd()
	}
}

// catchUp writes one page of a room's messages after its position, from
// the hub's ring or history, and once the room's history is exhausted
// continues with the live messages held meanwhile. It is the one place
// where history and live messages are stitched, by id.
func (s *Stream) catchUp(r *roomState) error {
	s.mu.Lock()
	from := r.pos
	s.mu.Unlock()
	page, err := s.since(r.name, from)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != open || r.pos != from {
		return nil
	}
	if page.Reset != nil {
		if r.pos.Epoch != "" { // a stream that never had a message lost none
			if s.e.opts.OnReset != nil {
				s.e.opts.OnReset()
			}
			s.enqueueLocked(s.resetFrame(r.name, page.Reset))
		}
		// The position no longer exists: what the page holds starts
		// afresh, whatever its sequence numbers.
		r.pos = chat.ID{}
	}
	for _, m := range page.Messages {
		if !m.ID.Covered(r.pos) {
			s.writeMessageLocked(r, m)
		}
	}
	if page.HasMore {
		return nil
	}
	r.rounds++
	// Live messages the history cannot lead to (lost by Redis) are written
	// after a second look rather than held for ever.
	s.settleLocked(r, r.rounds >= 2)
	return nil
}

// since reads a page for catchUp. Redis being unavailable for a moment
// (a crowd of resumes queueing on the pool, a failover) is waited out for
// up to CatchUpRetry rather than ending the stream, and with it every
// stream that shared the failed read.
func (s *Stream) since(room string, from chat.ID) (broker.Page, error) {
	deadline := time.Now().Add(s.e.opts.CatchUpRetry)
	wait := 50 * time.Millisecond
	for {
		page, err := s.e.opts.Rooms.Since(context.Background(), room, from)
		if err == nil || !errors.Is(err, chat.ErrUnavailable) || time.Now().Add(wait).After(deadline) {
			return page, err
		}
		s.e.log.Debug("catch-up read failed; retrying", "room", room, "err", err)
		time.Sleep(wait) // this stream's own goroutine; live messages are held meanwhile
		s.mu.Lock()
		open := s.state == open
		s.mu.Unlock()
		if !open {
			return page, err
		}
		wait = min(2*wait, time.Second)
	}
}

// resetFrame is the event telling the client that room's position is lost.
func (s *Stream) resetFrame(room string, reset *chat.Reset) []byte {
	if s.spec.EncodeReset != nil {
		return s.spec.EncodeReset(room, reset)
	}
	return s.e.opts.EncodeReset(reset)
}

// settleLocked writes the held live messages of r that continue its
// position and reports whether r is live again; with force it writes them
// all.
func (s *Stream) settleLocked(r *roomState, force bool) bool {
	for i, m := range r.held {
		switch {
		case m.ID.Covered(r.pos):
		case m.ID.Follows(r.pos) || force:
			s.writeMessageLocked(r, m)
		default:
			r.held = append(r.held[:0], r.held[i:]...)
			return false
		}
	}
	r.held, r.behind, r.rounds = nil, false, 0
	return true
}

// ping queues a heartbeat; writing it is also how an owned stream whose
// client vanished without closing is noticed.
func (s *Stream) ping() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == open && s.queued == 0 {
		s.enqueueLocked(s.e.opts.Ping)
	}
}
