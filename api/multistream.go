package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/api/sse"
	"roomcast/broker"
	"roomcast/redisscripts"
	"roomcast/redisscripts/cursor"
)

// DefaultStreamMaxRooms is the default bound on the rooms of one stream.
const DefaultStreamMaxRooms = 50

// streamRooms streams the messages of several rooms as one event stream
// whose ids are composite cursors.
// GET /stream
func (h *Handler) streamRooms(c echo.Context) error {
	rooms, err := h.roomsParam(c)
	if err != nil {
		return err
	}
	resume, err := h.resumeRooms(c.Request(), rooms)
	if err != nil {
		return err
	}
	user, err := streamUser(c)
	if err != nil {
		return err
	}
	if h.Presence != nil {
		for _, room := range rooms {
			defer h.Presence.Enter(room, user)()
		}
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	subs := make([]*broker.Subscription, 0, len(rooms))
	defer func() {
		for _, sub := range subs {
			sub.Close()
		}
	}()
	for _, room := range rooms {
		sub, err := h.Rooms.Subscribe(ctx, room)
		if err != nil {
			h.log.Warn("stream not started", "room", room, "err", err)
			return h.refuseStream(c, "unavailable, retry shortly")
		}
		subs = append(subs, sub)
	}
	s := h.startStream(c, strings.Join(rooms, ","))
	defer h.Metrics.StreamOpened()()

	pos := make([]redisscripts.ID, len(rooms))
	for i, sub := range subs {
		pos[i] = sub.Start()
		if resume != nil && resume[i].Known {
			pos[i] = resume[i].ID
		}
	}
	rc, err := newRoomCursor(h.Store, h.Cursors, rooms, pos)
	if err != nil {
		s.end(err)
		return nil
	}
	rc.onReset = h.Metrics.Reset
	if err := s.write(sse.AppendRetry(nil, h.Retry.Milliseconds())); err != nil {
		return nil
	}
	if resume != nil {
		h.Metrics.Resumed()
		var buf []byte
		for i := range rooms {
			if !resume[i].Known {
				continue
			}
			if buf, err = rc.catchUp(ctx, buf[:0], i); err == nil {
				err = s.write(buf)
			}
			if err != nil {
				s.end(err)
				return nil
			}
		}
	}
	return h.relayRooms(ctx, s, rc, subs)
}

// roomMessage is a live message of the stream's room i; a nil m means the
// room's subscription ended.
type roomMessage struct {
	i int
	m *broker.Message
}

// relayRooms merges the rooms' subscriptions into the stream until one
// ends, the client leaves, or a write fails.
func (h *Handler) relayRooms(ctx context.Context, s *stream, rc *roomCursor, subs []*broker.Subscription) error {
	merged := make(chan roomMessage, len(subs))
	for i, sub := range subs {
		go func() {
			for {
				select {
				case m, ok := <-sub.C():
					select {
					case merged <- roomMessage{i: i, m: m}:
					case <-ctx.Done():
						return
					}
					if !ok {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	heartbeat := time.NewTicker(h.Heartbeat)
	defer heartbeat.Stop()
	var buf []byte
	for {
		select {
		case rm := <-merged:
			if rm.m == nil {
				s.ended(subs[rm.i].Err())
				return nil
			}
			var err error
			buf, err = rc.deliver(ctx, buf[:0], rm.i, rm.m)
			for n := 1; err == nil && n < maxBatch && len(merged) > 0; n++ {
				rm = <-merged
				if rm.m == nil {
					break
				}
				buf, err = rc.deliver(ctx, buf, rm.i, rm.m)
			}
			if err == nil {
				err = s.write(buf)
			}
			if err != nil {
				s.end(err)
				return nil
			}
			if rm.m == nil {
				s.ended(subs[rm.i].Err())
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

// roomsParam returns the distinct rooms of the rooms query parameter, in
// the order given, each one the token may read.
func (h *Handler) roomsParam(c echo.Context) ([]string, error) {
	list := c.QueryParam("rooms")
	if list == "" {
		return nil, badRequest(typeInvalidParameter, "Invalid rooms", "rooms must list 1 or more room ids, comma-separated")
	}
	maxRooms := h.StreamMaxRooms
	if maxRooms <= 0 {
		maxRooms = DefaultStreamMaxRooms
	}
	seen := make(map[string]bool)
	var rooms []string
	for _, room := range strings.Split(list, ",") {
		if !redisscripts.ValidRoom(room) {
			return nil, errInvalidRoom
		}
		if seen[room] {
			continue
		}
		seen[room] = true
		if rooms = append(rooms, room); len(rooms) > maxRooms {
			return nil, badRequest(typeInvalidParameter, "Too many rooms",
				fmt.Sprintf("a stream may watch at most %d rooms", maxRooms))
		}
	}
	if claims, ok := c.Get(claimsKey).(auth.Claims); ok {
		for _, room := range rooms {
			if !claims.Rooms.CanRead(room) {
				return nil, forbidden(c, "the token does not allow reading room "+room)
			}
		}
	}
	return rooms, nil
}

// resumeRooms decodes the composite cursor of Last-Event-ID (or
// last_event_id) for rooms; nil when neither is given.
func (h *Handler) resumeRooms(r *http.Request, rooms []string) ([]cursor.Position, error) {
	text := r.Header.Get("Last-Event-ID")
	if text == "" {
		text = r.URL.Query().Get("last_event_id")
	}
	if text == "" {
		return nil, nil
	}
	pos, err := h.Cursors.Decode(text, rooms)
	if errors.Is(err, cursor.ErrInvalid) {
		return nil, errInvalidCompositeCursor
	}
	return pos, err
}

var errInvalidCompositeCursor = badRequest(typeInvalidCursor, "Invalid cursor",
	"the cursor was not made by this server, or was damaged or cut short")
