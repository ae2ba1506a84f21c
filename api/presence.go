package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/broker/chat"
	"roomcast/broker/presence"
	"roomcast/broker/stream"
)

// PresenceTracker knows who watches each room, across instances.
type PresenceTracker interface {
	// Enter counts a stream of user ("" for a stream without a user) in
	// room; the returned function is called once when the stream closes.
	Enter(room, user string) (leave func())
	Read(ctx context.Context, room string) (chat.Presence, error)
}

var _ PresenceTracker = (*presence.Tracker)(nil)

// EventPublisher publishes typing events, at most one per user and room
// per window.
type EventPublisher interface {
	AdmitTyping(ctx context.Context, room, user string, window time.Duration) (time.Time, bool, error)
	PublishEvent(ctx context.Context, room, name string, data []byte) error
}

// DefaultTypingInterval is the shortest time between two typing events of
// a user in a room.
const DefaultTypingInterval = 2 * time.Second

// getPresence lists who watches a room.
// GET /rooms/{room}/presence
func (h *Handler) getPresence(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	p, err := h.Presence.Read(c.Request().Context(), room)
	if err != nil {
		return err
	}
	type user struct {
		User  string `json:"user"`
		Since string `json:"since"`
	}
	out := struct {
		Room      string `json:"room"`
		Count     int    `json:"count"`
		Users     []user `json:"users"`
		Truncated bool   `json:"truncated"`
	}{Room: room, Count: p.Count, Users: make([]user, 0, len(p.Users)), Truncated: p.Count > len(p.Users)}
	for _, u := range p.Users {
		out.Users = append(out.Users, user{User: u.User, Since: u.Since.Format(presence.TimeFormat)})
	}
	return c.JSON(http.StatusOK, out)
}

// postTyping tells the room's live streams that a user is typing. Calls
// beyond one per TypingInterval are answered alike and publish nothing.
// POST /rooms/{room}/typing
func (h *Handler) postTyping(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	bodyUser, err := h.typingBody(c)
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
	ctx := c.Request().Context()
	at, ok, err := h.Events.AdmitTyping(ctx, room, user, h.typingInterval())
	if err != nil {
		return err
	}
	if ok {
		data, _ := json.Marshal(presence.Event{Room: room, User: user, Time: at.Format(presence.TimeFormat)})
		if err := h.Events.PublishEvent(ctx, room, "typing", data); err != nil {
			return err
		}
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *Handler) typingInterval() time.Duration {
	if h.TypingInterval > 0 {
		return h.TypingInterval
	}
	return DefaultTypingInterval
}

// typingBody reads the optional body of a typing call: nothing, or one
// JSON object with an optional "user".
func (h *Handler) typingBody(c echo.Context) (string, error) {
	body, err := readBody(c, 1024)
	if err != nil || len(body) == 0 {
		return "", err
	}
	if err := requireJSON(c.Request()); err != nil {
		return "", err
	}
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid typing body", detail) }
	if !utf8.Valid(body) {
		return "", invalid("the body is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return "", invalid(jsonErrorDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", invalid("the body must hold exactly one JSON object")
	}
	var user *string
	for name, value := range fields {
		if name != "user" {
			return "", invalid(fmt.Sprintf("unknown field %s", shorten(strconv.QuoteToASCII(name))))
		}
		if err := json.Unmarshal(value, &user); err != nil || user == nil {
			return "", invalid(`"user" must be a string`)
		}
	}
	if user == nil {
		return "", nil
	}
	if !validUser(*user) {
		return "", invalid(`"user" must be 1 to 64 printable characters`)
	}
	return *user, nil
}

// enterPresence counts a stream of user in the presence of each of its
// rooms and returns, for each room, the function that uncounts it; each
// does so once, however often called.
func (h *Handler) enterPresence(rooms []stream.Room, user string) (leaves map[string]func()) {
	leaves = make(map[string]func(), len(rooms))
	if h.Presence == nil {
		return leaves
	}
	for _, r := range rooms {
		leaves[r.Name] = sync.OnceFunc(h.Presence.Enter(r.Name, user))
	}
	return leaves
}

// streamUser is the user a stream is listed as, "" for none. The user is
// the token's subject (a user query parameter naming another is refused
// with 403); in open mode and with a server API key the user query
// parameter, if any, else the stream is not listed.
func streamUser(c echo.Context) (string, error) {
	query, given := queryParam(c, "user")
	if given && !validUser(query) {
		return "", badRequest(typeInvalidParameter, "Invalid user", "user must be 1 to 64 printable characters")
	}
	if claims, ok := c.Get(claimsKey).(auth.Claims); !ok || claims.Server() {
		return query, nil
	}
	return postingUser(c, query)
}
