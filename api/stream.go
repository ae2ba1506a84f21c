package api

import (
	"bytes"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// streamRoom streams a room's messages as Server-Sent Events, replaying
// those after Last-Event-ID (or last_event_id) first.
// GET /rooms/{room}/stream
func (h *Handler) streamRoom(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if err := h.checkToken(c, readAccess, true); err != nil {
		return err
	}
	return h.openStream(c, []string{room}, func() (stream.Spec, bool, error) {
		resume, err := resumePoint(c)
		if err != nil {
			return stream.Spec{}, false, err
		}
		return stream.Spec{Rooms: []stream.Room{{Name: room, Resume: resume}}}, resume != nil, nil
	})
}

// openStream is where both kinds of stream start, once their rooms and
// token are checked: it checks the stream's user, admits the stream under
// the stream limits, and only then reads its resume point with resume
// (which returns the stream's spec, and whether it resumes), the order
// openapi.yaml gives. It opens the stream in the engine, counts its user
// in each room's presence, then hands it over and returns (over HTTP/1.1
// the engine owns the connection from then on). Everything it takes is
// given back by the stream's OnEnd. Guards are plain calls rather than
// middleware, so that no middleware frame stays behind a handed-over
// stream.
func (h *Handler) openStream(c echo.Context, rooms []string, resume func() (spec stream.Spec, resumed bool, err error)) error {
	user, err := streamUser(c)
	if err != nil {
		return err
	}
	for _, room := range rooms {
		if err := h.refuseBanned(c, room, user); err != nil {
			return err
		}
	}
	release, err := h.admitStream(c)
	if errors.Is(err, errServerFull) {
		h.log.Warn("stream refused: MAX_STREAMS reached", "max", h.Security.MaxStreams)
		return h.refuseStream(c, "server busy, retry shortly")
	} else if err != nil {
		return err
	}
	spec, resumed, err := resume()
	if err != nil {
		release()
		return err
	}
	closed := h.Metrics.StreamOpened()
	var leaves map[string]func()
	unlist := func() {}
	spec.Expires = streamExpiry(c)
	spec.User = user
	spec.OnEnd = func() {
		unlist()
		for _, leave := range leaves {
			leave()
		}
		release()
		closed()
	}
	s, err := h.Streams.Open(c.Request().Context(), spec)
	if err != nil {
		release()
		closed()
		h.log.Warn("stream not started", "rooms", len(spec.Rooms), "room", spec.Rooms[0].Name, "err", err)
		return h.refuseStream(c, "unavailable, retry shortly")
	}
	// Entered once the stream listens, so that it sees its own join; OnEnd
	// cannot run before handOver.
	leaves = h.enterPresence(spec.Rooms, user)
	var claims *auth.Claims
	if cl, ok := c.Get(claimsKey).(auth.Claims); ok {
		claims = &cl
	}
	unlist = h.listStream(s, claims, user, spec.Cursor != nil, leaves)
	if resumed {
		h.Metrics.Resumed()
	}
	h.handOver(c, s)
	return nil
}

// handOver gives an opened stream its connection: the hijacked one over
// HTTP/1.1, after writing the response head on it; otherwise (HTTP/2, a
// test recorder) the handler serves the stream itself until it ends.
func (h *Handler) handOver(c echo.Context, s *stream.Stream) {
	res := c.Response()
	setStreamHeaders(res.Header())
	retry := h.Frames.Opening()
	rc := http.NewResponseController(res)
	if c.Request().ProtoMajor == 1 {
		conn, _, err := rc.Hijack()
		if err == nil {
			// The response has no length: it ends when the connection
			// closes, which the engine does when the stream ends.
			res.Header().Set("Connection", "close")
			var head bytes.Buffer
			head.WriteString("HTTP/1.1 200 OK\r\n")
			_ = res.Header().Write(&head)
			head.WriteString("\r\n")
			head.Write(retry)
			// For the request log and metrics: the stream was answered.
			res.Status, res.Committed, res.Size = http.StatusOK, true, int64(head.Len())
			s.Attach(conn, head.Bytes())
			return
		}
	}
	res.WriteHeader(http.StatusOK)
	s.Serve(c.Request().Context(), responseConn{res, rc}, retry)
}

// responseConn is a ResponseWriter as the engine's stream.Conn.
type responseConn struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (w responseConn) SetWriteDeadline(t time.Time) error { return w.rc.SetWriteDeadline(t) }
func (w responseConn) Flush() error                       { return w.rc.Flush() }

func setStreamHeaders(header http.Header) {
	header.Set(echo.HeaderContentType, "text/event-stream")
	header.Set(echo.HeaderCacheControl, "no-cache")
	header.Set("X-Accel-Buffering", "no")
}

// refuseStream ends a stream that cannot start for a passing reason (Redis
// unreachable, shutting down, too busy): a 200 that advises a retry and
// closes makes EventSource try again, where an error status would make it
// give up for good.
func (h *Handler) refuseStream(c echo.Context, why string) error {
	setStreamHeaders(c.Response().Header())
	c.Response().WriteHeader(http.StatusOK)
	_, _ = c.Response().Write(h.Frames.Refusal(why))
	return nil
}

// resumePoint returns the position a stream resumes from (see
// resumeText); nil when none is given.
func resumePoint(c echo.Context) (*chat.ID, error) {
	text, err := resumeText(c)
	if text == "" || err != nil {
		return nil, err
	}
	id, err := chat.ParseID(text)
	if err != nil {
		return nil, errInvalidCursor
	}
	return &id, nil
}

// resumeText is the resume point of a stream as sent: the Last-Event-ID
// header that EventSource sends on reconnect, else the last_event_id query
// parameter; "" when neither is given. An empty header counts as absent,
// as an empty last event id means none in Server-Sent Events (EventSource
// then sends no header, but a proxy might pass an empty one on); an empty
// last_event_id, which only a client's own code can send, is a 400 like
// every other empty query value.
func resumeText(c echo.Context) (string, error) {
	query, given := queryParam(c, "last_event_id")
	if given && query == "" {
		return "", errEmptyResumePoint
	}
	if header := c.Request().Header.Get("Last-Event-ID"); header != "" {
		return header, nil
	}
	return query, nil
}

var errEmptyResumePoint = badRequest(typeInvalidCursor, "Invalid cursor",
	"last_event_id is empty; leave it out to start live")
