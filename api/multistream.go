package api

import (
	"errors"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/api/cursor"
	"roomcast/api/sse"
	"roomcast/broker/stream"
)

// DefaultStreamMaxRooms is the default bound on the rooms of one stream.
const DefaultStreamMaxRooms = 50

// streamRooms streams the messages of several rooms as one event stream
// whose ids are composite cursors. Rooms the cursor has a position for
// resume from it exactly; the others start live.
// GET /stream
func (h *Handler) streamRooms(c echo.Context) error {
	rooms, err := h.roomsParam(c)
	if err != nil {
		return err
	}
	if err := h.checkToken(c, anyRoom, true); err != nil {
		return err
	}
	if err := canReadAll(c, rooms); err != nil {
		return err
	}
	return h.openStream(c, rooms, func() (stream.Spec, bool, error) {
		resume, err := h.resumeRooms(c, rooms)
		if err != nil {
			return stream.Spec{}, false, err
		}
		spec := stream.Spec{Rooms: make([]stream.Room, len(rooms)), Cursor: sse.NewCursor(h.Cursors, rooms)}
		for i, room := range rooms {
			spec.Rooms[i].Name = room
			if resume != nil && resume[i].Known {
				spec.Rooms[i].Resume = &resume[i].ID
			}
		}
		return spec, resume != nil, nil
	})
}

// roomsParam returns the distinct rooms of the rooms query parameter, in
// the order given.
func (h *Handler) roomsParam(c echo.Context) ([]string, error) {
	maxRooms := h.StreamMaxRooms
	if maxRooms <= 0 {
		maxRooms = DefaultStreamMaxRooms
	}
	return roomList(c.QueryParam("rooms"), maxRooms)
}

// canReadAll answers 403, naming the room, unless the request's token may
// read every one of rooms; in open mode every room may be read.
func canReadAll(c echo.Context, rooms []string) error {
	if claims, ok := c.Get(claimsKey).(auth.Claims); ok {
		for _, room := range rooms {
			if !claims.Rooms.CanRead(room) {
				return forbidden(c, "the token does not allow reading room "+room)
			}
		}
	}
	return nil
}

// resumeRooms decodes the composite cursor of Last-Event-ID (or
// last_event_id, see resumeText) for rooms; nil when none is given.
func (h *Handler) resumeRooms(c echo.Context, rooms []string) ([]cursor.Position, error) {
	text, err := resumeText(c)
	if text == "" || err != nil {
		return nil, err
	}
	pos, err := h.Cursors.Decode(text, rooms)
	if errors.Is(err, cursor.ErrInvalid) {
		return nil, errInvalidCompositeCursor
	}
	return pos, err
}

var errInvalidCompositeCursor = badRequest(typeInvalidCursor, "Invalid cursor",
	"the cursor was not made by this server, or was damaged or cut short")
