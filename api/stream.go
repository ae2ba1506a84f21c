package api

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/sse"
	"roomcast/broker"
	"roomcast/redisscripts"
)

// EncodeMessage is the SSE frame of a live message; the broker calls it once
// per message and every stream of the room writes the same bytes.
func EncodeMessage(m *broker.Message) []byte {
	return sse.AppendEvent(make([]byte, 0, len(m.Data)+64), m.ID.String(), "message", m.Data)
}

// streamRoom streams a room's messages as Server-Sent Events, replaying
// those after Last-Event-ID (or last_event_id) first.
// GET /rooms/{room}/stream
func (h *Handler) streamRoom(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	resume, err := resumePoint(c.Request())
	if err != nil {
		return err
	}
	leave, err := h.enterPresence(c, room)
	if err != nil {
		return err
	}
	defer leave()
	ctx := c.Request().Context()
	sub, err := h.Rooms.Subscribe(ctx, room)
	if err != nil {
		h.log.Warn("stream not started", "room", room, "err", err)
		return h.refuseStream(c, "unavailable, retry shortly")
	}
	s := h.startStream(c, room)
	defer sub.Close()
	defer h.Metrics.StreamOpened()()

	s.pos = sub.Start()
	if err := s.write(sse.AppendRetry(nil, h.Retry.Milliseconds())); err != nil {
		return nil
	}
	if resume != nil {
		h.Metrics.Resumed()
		s.pos = *resume
		if err := s.catchUp(ctx); err != nil {
			s.end(err)
			return nil
		}
	}
	heartbeat := time.NewTicker(h.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case m, ok := <-sub.C():
			if !ok {
				s.ended(sub.Err())
				return nil
			}
			if err := s.deliverQueued(ctx, m, sub.C()); err != nil {
				s.end(err)
				return nil
			}
		case <-heartbeat.C:
			if err := s.write(sse.AppendComment(nil, "ping")); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// startStream answers 200 with the event-stream headers.
func (h *Handler) startStream(c echo.Context, room string) *stream {
	header := c.Response().Header()
	header.Set(echo.HeaderContentType, "text/event-stream")
	header.Set(echo.HeaderCacheControl, "no-cache")
	header.Set("X-Accel-Buffering", "no")
	c.Response().WriteHeader(http.StatusOK)
	return &stream{h: h, w: c.Response(), rc: http.NewResponseController(c.Response()), room: room}
}

// refuseStream ends a stream that cannot start for a passing reason (Redis
// unreachable, shutting down, too busy): a 200 that advises a retry and
// closes makes EventSource try again, where an error status would make it
// give up for good.
func (h *Handler) refuseStream(c echo.Context, why string) error {
	h.startStream(c, "").close(retryJitter(h.Retry), why)
	return nil
}

// resumePoint returns the position a stream resumes from: the Last-Event-ID
// header that EventSource sends on reconnect, else the last_event_id query
// parameter; nil when neither is given.
func resumePoint(r *http.Request) (*redisscripts.ID, error) {
	text := r.Header.Get("Last-Event-ID")
	if text == "" {
		text = r.URL.Query().Get("last_event_id")
	}
	if text == "" {
		return nil, nil
	}
	id, err := redisscripts.ParseID(text)
	if err != nil {
		return nil, errInvalidCursor
	}
	return &id, nil
}

// stream is one client's event stream: it writes each message after pos
// exactly once, in order.
type stream struct {
	h    *Handler
	w    http.ResponseWriter
	rc   *http.ResponseController
	room string
	pos  redisscripts.ID // the last message the client has
}

// maxBatch bounds the messages written with one flush.
const maxBatch = 64

// deliverQueued writes m and the messages already queued behind it with one
// flush: under load one system call carries many messages. A closed queue
// is left for the caller to notice.
func (s *stream) deliverQueued(ctx context.Context, m *broker.Message, queue <-chan *broker.Message) error {
	s.setWriteDeadline()
	for n := 1; ; n++ {
		if err := s.deliver(ctx, m); err != nil {
			return err
		}
		if n == maxBatch {
			return s.flush()
		}
		select {
		case next, ok := <-queue:
			if !ok {
				return s.flush()
			}
			m = next
		default:
			return s.flush()
		}
	}
}

// deliver writes a live message, unflushed, skipping those the client has
// and reading history first if the message does not directly follow pos.
func (s *stream) deliver(ctx context.Context, m *broker.Message) error {
	if m.ID.Covered(s.pos) {
		return nil
	}
	if !m.ID.Follows(s.pos) {
		if err := s.catchUp(ctx); err != nil {
			return err
		}
		if m.ID.Covered(s.pos) {
			return nil
		}
	}
	if _, err := s.w.Write(m.Frame); err != nil {
		return err
	}
	s.pos = m.ID
	return nil
}

// catchUp writes every retained message after pos, preceded by a reset
// event if some of them are lost.
func (s *stream) catchUp(ctx context.Context) error {
	for {
		page, err := s.h.Store.History(ctx, s.room, redisscripts.Query{
			Direction: redisscripts.After, Cursor: s.pos, Limit: maxLimit,
		})
		if err != nil {
			return err
		}
		var buf []byte
		if page.Reset != nil {
			if s.pos.Epoch != "" { // a stream that never had a message lost none
				s.h.Metrics.Reset()
				buf = sse.AppendEvent(buf, "", "reset", encodeReset(page.Reset))
			}
			// The position no longer exists: what the page holds starts
			// afresh, whatever its sequence numbers.
			s.pos = redisscripts.ID{}
		}
		for _, data := range page.Messages {
			id, err := redisscripts.IDOf(data)
			if err != nil {
				return err
			}
			if id.Covered(s.pos) {
				continue
			}
			buf = sse.AppendEvent(buf, id.String(), "message", data)
			s.pos = id
		}
		if err := s.write(buf); err != nil {
			return err
		}
		if !page.HasMore {
			return nil
		}
	}
}

// write sends b and flushes it, within the per-write deadline.
func (s *stream) write(b []byte) error {
	s.setWriteDeadline()
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.flush()
}

// setWriteDeadline bounds the writes and the flush that follow: a client
// that does not take them in time is cut off.
func (s *stream) setWriteDeadline() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.h.WriteTimeout))
}

func (s *stream) flush() error { return s.rc.Flush() }

// ended tells the client why its subscription ended and closes the stream.
func (s *stream) ended(reason error) {
	switch {
	case errors.Is(reason, broker.ErrSlow):
		s.h.log.Warn("stream dropped: client too slow", "room", s.room)
		s.close(s.h.Retry.Milliseconds(), "disconnected: client too slow; reconnect with Last-Event-ID")
	case errors.Is(reason, broker.ErrReset):
		s.close(retryJitter(s.h.Retry), "the room's history went back; reconnect with Last-Event-ID")
	default:
		s.close(retryJitter(s.h.Retry), "server going away; reconnect")
	}
}

// end closes the stream after a failure on the server's side.
func (s *stream) end(err error) {
	s.h.log.Warn("stream ended", "room", s.room, "err", err)
	s.close(retryJitter(s.h.Retry), "interrupted; reconnect")
}

func (s *stream) close(retry int64, why string) {
	_ = s.write(sse.AppendComment(sse.AppendRetry(nil, retry), why))
}

// retryJitter spreads the reconnections of many clients over up to the
// configured delay, so that a restart does not make them all arrive at once.
func retryJitter(retry time.Duration) int64 {
	ms := max(retry.Milliseconds(), 2)
	return ms/4 + rand.Int64N(ms*3/4)
}
