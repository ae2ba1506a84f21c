package stream

import (
	"context"
	"errors"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
)

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
	if s.state != open || r.pos != from || r.left {
		return nil
	}
	if page.Reset != nil {
		if r.pos.Epoch != "" { // a stream that never had a message lost none
			if s.e.opts.Metrics != nil {
				s.e.opts.Metrics.Reset()
			}
			s.enqueueLocked(s.resetFrame(r, page.Reset), nil)
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

// resetFrame is the event telling the client that r's position is lost;
// in a stream of several rooms it names the room, which starts afresh in
// the stream's cursor.
func (s *Stream) resetFrame(r *roomState, reset *chat.Reset) []byte {
	if s.spec.Cursor == nil {
		return s.e.opts.Frames.Reset("", reset)
	}
	s.spec.Cursor.Forget(r.index)
	return s.e.opts.Frames.Reset(r.name, reset)
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
