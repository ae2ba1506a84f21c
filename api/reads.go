package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/broker/chat"
)

// ReadStore keeps each user's read marker per room.
type ReadStore interface {
	// MarkRead moves user's marker in room forward to id (never back).
	MarkRead(ctx context.Context, room, user string, id chat.ID) (chat.Mark, error)
	// ReadStates reads user's state in each room, in one round trip per
	// Redis node.
	ReadStates(ctx context.Context, user string, rooms []string) ([]chat.ReadState, error)
	// UserRooms lists the rooms user has (or had) a marker in, in byte
	// order, after the room after, and whether more follow.
	UserRooms(ctx context.Context, user, after string, limit int) (rooms []string, more bool, err error)
}

// MaxReadRooms bounds the rooms of one GET /me/rooms, listed or paged.
const MaxReadRooms = 100

// putRead moves the caller's read marker in a room forward.
// PUT /rooms/{room}/read
func (h *Handler) putRead(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readBody(c, 1024)
	if err != nil {
		return err
	}
	id, bodyUser, err := decodeMark(body)
	if err != nil {
		return err
	}
	user, err := postingUser(c, bodyUser)
	if err != nil {
		return err
	}
	if err := h.refuseBanned(c, room, user); err != nil {
		return err
	}
	mark, err := h.Reads.MarkRead(c.Request().Context(), room, user, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Room     string `json:"room"`
		LastRead string `json:"last_read"`
		Unread   int64  `json:"unread"`
	}{room, mark.LastRead.String(), mark.Unread})
}

// decodeMark validates a read marker body: one JSON object with an "id"
// and, in open mode, an optional "user" ("" when absent), nothing else.
func decodeMark(body []byte) (chat.ID, string, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid read marker", detail) }
	if !utf8.Valid(body) {
		return chat.ID{}, "", invalid("the body is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return chat.ID{}, "", invalid(jsonErrorDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return chat.ID{}, "", invalid("the body must hold exactly one JSON object")
	}
	var id, user *string
	for name, value := range fields {
		var dst **string
		switch name {
		case "id":
			dst = &id
		case "user":
			dst = &user
		default:
			return chat.ID{}, "", invalid(fmt.Sprintf("unknown field %s", shorten(strconv.QuoteToASCII(name))))
		}
		if err := json.Unmarshal(value, dst); err != nil || *dst == nil {
			return chat.ID{}, "", invalid(fmt.Sprintf("%q must be a string", name))
		}
	}
	if id == nil {
		return chat.ID{}, "", invalid(`"id" is required`)
	}
	parsed, err := chat.ParseID(*id)
	if err != nil {
		return chat.ID{}, "", invalid(`"id" must be a message id`)
	}
	if user == nil {
		return parsed, "", nil
	}
	if !validUser(*user) {
		return chat.ID{}, "", invalid(`"user" must be 1 to 64 printable characters`)
	}
	return parsed, *user, nil
}

// roomRead is one room of a GET /me/rooms answer.
type roomRead struct {
	Room        string          `json:"room"`
	LastRead    string          `json:"last_read,omitempty"`
	Unread      int64           `json:"unread"`
	LastMessage json.RawMessage `json:"last_message,omitempty"`
}

// getMyRooms answers the caller's read state in the rooms listed, or else
// in the rooms of their index, a page at a time.
// GET /me/rooms
func (h *Handler) getMyRooms(c echo.Context) error {
	q, err := myRoomsQuery(c)
	if err != nil {
		return err
	}
	user, err := readerUser(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	rooms, next := q.rooms, ""
	if rooms != nil {
		if err := canReadAll(c, rooms); err != nil {
			return err
		}
	} else {
		page, more, err := h.Reads.UserRooms(ctx, user, q.cursor, q.limit)
		if err != nil {
			return err
		}
		if more {
			next = page[len(page)-1]
		}
		// A token's rooms may have shrunk since the marker was set: its
		// rooms are left out, not refused, as the caller did not ask.
		rooms = readable(c, page)
	}
	states, err := h.Reads.ReadStates(ctx, user, rooms)
	if err != nil {
		return err
	}
	out := struct {
		Rooms []roomRead `json:"rooms"`
		Next  string     `json:"next,omitempty"`
	}{Rooms: make([]roomRead, 0, len(states)), Next: next}
	for _, st := range states {
		if q.rooms == nil && st.LastRead == (chat.ID{}) {
			continue // indexed, but the marker went with the room (ROOM_TTL, lost)
		}
		r := roomRead{Room: st.Room, Unread: st.Unread, LastMessage: st.LastMessage}
		if st.LastRead != (chat.ID{}) {
			r.LastRead = st.LastRead.String()
		}
		out.Rooms = append(out.Rooms, r)
	}
	return c.JSON(http.StatusOK, out)
}

// myRooms is the query of GET /me/rooms: rooms listed, or a page of the
// index (cursor, limit).
type myRooms struct {
	rooms  []string // nil: the index
	cursor string
	limit  int
}

func myRoomsQuery(c echo.Context) (myRooms, error) {
	q := myRooms{limit: MaxReadRooms}
	list, listed := queryParam(c, "rooms")
	cursor, paged := queryParam(c, "cursor")
	limit, limited := queryParam(c, "limit")
	if listed && (paged || limited) {
		return q, badRequest(typeInvalidParameter, "Invalid parameters",
			"rooms lists the rooms wanted; cursor and limit page the index instead, and go without it")
	}
	if listed {
		rooms, err := roomList(list, MaxReadRooms)
		q.rooms = rooms
		return q, err
	}
	if paged {
		if !chat.ValidRoom(cursor) {
			return q, badRequest(typeInvalidCursor, "Invalid cursor", "cursor must be a next value of an earlier answer")
		}
		q.cursor = cursor
	}
	if limited {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxReadRooms {
			return q, badRequest(typeInvalidParameter, "Invalid limit", fmt.Sprintf("limit must be 1 to %d", MaxReadRooms))
		}
		q.limit = n
	}
	return q, nil
}

// roomList returns the distinct rooms of a comma-separated list, in the
// order given; at most maxRooms.
func roomList(list string, maxRooms int) ([]string, error) {
	if list == "" {
		return nil, badRequest(typeInvalidParameter, "Invalid rooms", "rooms must list 1 or more room ids, comma-separated")
	}
	seen := make(map[string]bool)
	rooms := []string{}
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
			return nil, badRequest(typeInvalidParameter, "Too many rooms", fmt.Sprintf("rooms may list at most %d rooms", maxRooms))
		}
	}
	return rooms, nil
}

// readable is the rooms of rooms the request's token may read; all of
// them in open mode.
func readable(c echo.Context, rooms []string) []string {
	claims, ok := c.Get(claimsKey).(auth.Claims)
	if !ok {
		return rooms
	}
	out := rooms[:0:0]
	for _, room := range rooms {
		if claims.Rooms.CanRead(room) {
			out = append(out, room)
		}
	}
	return out
}

// readerUser is whose read state a GET /me/rooms answers: the token's
// subject (a user parameter naming another is a 403); in open mode the
// user parameter, or "anonymous", as for posts.
func readerUser(c echo.Context) (string, error) {
	query, given := queryParam(c, "user")
	if given && !validUser(query) {
		return "", badRequest(typeInvalidParameter, "Invalid user", "user must be 1 to 64 printable characters")
	}
	return postingUser(c, query)
}
