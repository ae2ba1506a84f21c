package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/api/cursor"
	"roomcast/api/sse"
	"roomcast/broker"
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
	return h.openStream(c, func() (stream.Spec, bool, error) {
		resume, err := h.resumeRooms(c, rooms)
		if err != nil {
			return stream.Spec{}, false, err
		}
		ids := &compositeIDs{codec: h.Cursors, rooms: rooms, index: make(map[string]int, len(rooms)), log: h.log}
		for i, room := range rooms {
			ids.index[room] = i
		}
		spec := stream.Spec{Rooms: make([]stream.Room, len(rooms)),
			IDLine: ids.line, WithoutID: withoutID, EncodeReset: ids.reset}
		for i, room := range rooms {
			spec.Rooms[i].Name = room
			if resume != nil && resume[i].Known {
				spec.Rooms[i].Resume = &resume[i].ID
			}
		}
		return spec, resume != nil, nil
	})
}

// compositeIDs writes the id lines of a multi-room stream: the composite
// cursor of every room's position. The engine calls it with the stream's
// lock held, so it needs none; each message re-encodes only its room's
// entry (cursor.Encoder.Set).
type compositeIDs struct {
	codec cursor.Codec
	rooms []string
	index map[string]int // of each room in rooms
	log   *slog.Logger
	enc   *cursor.Encoder // made at the first message, from every room's position
	size  int             // of an id line
}

// line is the stream's stream.Spec.IDLine. A position that cannot be
// encoded (not an epoch of redisscripts) gets no id line, so that the
// client's Last-Event-ID stays at the last good cursor: it may then see
// messages twice, never lose one.
func (ci *compositeIDs) line(room string, m *broker.Message, positions func(string) chat.ID) []byte {
	var err error
	if ci.enc == nil {
		start := make([]chat.ID, len(ci.rooms))
		for i, r := range ci.rooms {
			start[i] = positions(r)
		}
		if ci.enc, err = ci.codec.NewEncoder(ci.rooms, start); err == nil {
			ci.size = len("id: \n") + len(ci.enc.Token()) // every token of an Encoder has one length
		}
	} else {
		err = ci.enc.Set(ci.index[room], m.ID)
	}
	if err != nil {
		ci.log.Warn("composite cursor not updated", "room", room, "err", err)
		return nil
	}
	line := make([]byte, 0, ci.size)
	line = append(line, "id: "...)
	line = ci.enc.AppendToken(line)
	return append(line, '\n')
}

// reset is the stream's stream.Spec.EncodeReset: the reset event names its
// room, and the room's position in the cursor starts afresh.
func (ci *compositeIDs) reset(room string, r *chat.Reset) []byte {
	if ci.enc != nil {
		_ = ci.enc.Set(ci.index[room], chat.ID{})
	}
	data, _ := json.Marshal(roomReset{Room: room, Reset: r})
	return sse.AppendEvent(nil, "", "reset", data)
}

// roomReset is a Reset that names its room, as multi-room streams send it.
type roomReset struct {
	Room string `json:"room"`
	*chat.Reset
}

// roomsParam returns the distinct rooms of the rooms query parameter, in
// the order given.
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
			return nil, badRequest(typeInvalidRoom, errInvalidRoom.Title,
				fmt.Sprintf("rooms lists %s: %s", shorten(strconv.QuoteToASCII(room)), errInvalidRoom.Detail))
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
	return rooms, nil
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
