package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/api/cursor"
	"roomcast/api/sse"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// DefaultStreamMaxRooms is the default bound on the rooms of one stream.
const DefaultStreamMaxRooms = 50

// streamRooms streams the messages of several rooms as one event stream
// whose ids are composite cursors. Rooms the cursor has a position for
// resume from it exactly; the others start live.
// GET /stream
func (h *Handler) streamRooms(c echo.Context) error {
	if err := h.checkToken(c, anyRoom, true); err != nil {
		return err
	}
	rooms, err := h.roomsParam(c)
	if err != nil {
		return err
	}
	resume, err := h.resumeRooms(c.Request(), rooms)
	if err != nil {
		return err
	}
	spec := stream.Spec{Rooms: make([]stream.Room, len(rooms)), Cursor: sse.NewCursor(h.Cursors, rooms)}
	for i, room := range rooms {
		spec.Rooms[i].Name = room
		if resume != nil && resume[i].Known {
			spec.Rooms[i].Resume = &resume[i].ID
		}
	}
	return h.openStream(c, spec, resume != nil)
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
		if !chat.ValidRoom(room) {
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
