package stream

import (
	"errors"
	"os"
	"time"
)

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
	if d := s.e.opts.StreamFlushDelay; d > 0 {
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
// without writev allows), renewing the write deadline only when
// less than half of it is left.
func (s *Stream) write() error {
	now := time.Now()
	if t := s.e.opts.StreamWriteTimeout; t > 0 && s.deadline.Sub(now) < t/2 {
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
