package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/broker/chat"
)

// RoomStore keeps rooms' own settings (redisscripts.Store), which the
// post script reads on every post.
type RoomStore interface {
	// Settings returns a room's settings; the zero Settings when it has
	// none.
	Settings(ctx context.Context, room string) (chat.Settings, error)
	// SetSettings replaces a room's settings.
	SetSettings(ctx context.Context, room string, s chat.Settings) error
	// Directory returns a page of the rooms by last post, newest first.
	Directory(ctx context.Context, q chat.DirectoryQuery) (chat.DirectoryPage, error)
}

// The limits of GET /rooms.
const (
	defaultDirectoryLimit = 50
	maxDirectoryLimit     = 100
)

// directoryRoom is one room of a GET /rooms answer.
type directoryRoom struct {
	Room         string          `json:"room"`
	Title        string          `json:"title,omitempty"`
	LastActivity string          `json:"last_activity"`
	LastMessage  json.RawMessage `json:"last_message"`
	Seq          int64           `json:"seq"`
	Watchers     int64           `json:"watchers"`
	Users        int64           `json:"users"`
}

// listRooms answers a page of the rooms the caller may read, by last post,
// newest first.
// GET /rooms
func (h *Handler) listRooms(c echo.Context) error {
	q, err := directoryQuery(c)
	if err != nil {
		return err
	}
	if claims, ok := c.Get(claimsKey).(auth.Claims); ok && !claims.Server() {
		q.Visible = claims.Rooms.CanRead
	}
	page, err := h.Rooms.Directory(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := struct {
		Rooms []directoryRoom `json:"rooms"`
		Next  string          `json:"next,omitempty"`
	}{Rooms: make([]directoryRoom, 0, len(page.Rooms)), Next: page.Next.String()}
	for _, r := range page.Rooms {
		out.Rooms = append(out.Rooms, directoryRoom{Room: r.Room, Title: r.Title,
			LastActivity: r.LastActivity.UTC().Format("2006-01-02T15:04:05.000Z"), LastMessage: r.LastMessage,
			Seq: r.Seq, Watchers: r.Watchers, Users: r.Users})
	}
	return c.JSON(http.StatusOK, out)
}

// directoryQuery reads GET /rooms's prefix, cursor and limit.
func directoryQuery(c echo.Context) (chat.DirectoryQuery, error) {
	q := chat.DirectoryQuery{Limit: defaultDirectoryLimit}
	if prefix, given := queryParam(c, "prefix"); given {
		if !chat.ValidRoom(prefix) {
			return q, badRequest(typeInvalidParameter, "Invalid prefix",
				"prefix is the start of a room id: 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'")
		}
		q.Prefix = prefix
	}
	if cursor, given := queryParam(c, "cursor"); given {
		after, err := chat.ParseDirectoryCursor(cursor)
		if err != nil {
			return q, badRequest(typeInvalidCursor, "Invalid cursor", "cursor must be a next value of an earlier answer")
		}
		q.After = after
	}
	if limit, given := queryParam(c, "limit"); given {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > maxDirectoryLimit {
			return q, badRequest(typeInvalidParameter, "Invalid limit", fmt.Sprintf("limit must be 1 to %d", maxDirectoryLimit))
		}
		q.Limit = n
	}
	return q, nil
}

// The bounds of a room's settings (PUT /rooms/{room}).
const (
	maxTitleRunes     = 200
	maxTopicRunes     = 1000
	maxRoomHistoryMax = 1_000_000 // HISTORY_MAX's bound too
	maxRoomTTLSeconds = 365 * 24 * 3600
	maxSlowModeSecs   = 24 * 3600
	maxSettingsBytes  = 16 << 10
)

// roomSettings is the JSON of a room's settings: history_max and ttl are
// absent when the room follows the server's HISTORY_MAX and ROOM_TTL.
type roomSettings struct {
	Room       string `json:"room"`
	Title      string `json:"title,omitempty"`
	Topic      string `json:"topic,omitempty"`
	HistoryMax int    `json:"history_max,omitempty"`
	TTL        int64  `json:"ttl,omitempty"` // seconds
	ReadOnly   bool   `json:"read_only"`
	SlowMode   int64  `json:"slow_mode"` // seconds
}

func settingsJSON(room string, s chat.Settings) roomSettings {
	return roomSettings{Room: room, Title: s.Title, Topic: s.Topic, HistoryMax: s.HistoryMax,
		TTL: int64(s.TTL / time.Second), ReadOnly: s.ReadOnly, SlowMode: int64(s.SlowMode / time.Second)}
}

// getRoom answers a room's settings; a room without any has the
// defaults, whether or not it has messages.
// GET /rooms/{room}
func (h *Handler) getRoom(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	s, err := h.Rooms.Settings(c.Request().Context(), room)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, settingsJSON(room, s))
}

// putRoom replaces a room's settings by the body's: a setting the body
// leaves out is the default again.
// PUT /rooms/{room}
func (h *Handler) putRoom(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readBody(c, maxSettingsBytes)
	if err != nil {
		return err
	}
	s, err := decodeSettings(body)
	if err != nil {
		return err
	}
	if err := h.Rooms.SetSettings(c.Request().Context(), room, s); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, settingsJSON(room, s))
}

// decodeSettings validates a settings body: one JSON object with any of
// title, topic, history_max, ttl, read_only and slow_mode, nothing else.
func decodeSettings(body []byte) (chat.Settings, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid settings", detail) }
	var title, topic *string
	var historyMax, ttl, slowMode *float64
	var readOnly *bool
	if err := decodeFields(body, invalid, map[string]any{"title": &title, "topic": &topic,
		"history_max": &historyMax, "ttl": &ttl, "read_only": &readOnly, "slow_mode": &slowMode}); err != nil {
		return chat.Settings{}, err
	}
	var s chat.Settings
	if title != nil {
		if !validText(*title, maxTitleRunes) {
			return s, invalid(fmt.Sprintf(`"title" must be 1 to %d printable characters`, maxTitleRunes))
		}
		s.Title = *title
	}
	if topic != nil {
		if !validText(*topic, maxTopicRunes) {
			return s, invalid(fmt.Sprintf(`"topic" must be 1 to %d printable characters`, maxTopicRunes))
		}
		s.Topic = *topic
	}
	integer := func(name string, v *float64, lo, hi int64) (int64, error) {
		if v == nil {
			return 0, nil
		}
		if *v != math.Trunc(*v) || *v < float64(lo) || *v > float64(hi) {
			return 0, invalid(fmt.Sprintf("%q must be an integer from %d to %d", name, lo, hi))
		}
		return int64(*v), nil
	}
	n, err := integer("history_max", historyMax, 1, maxRoomHistoryMax)
	if err != nil {
		return s, err
	}
	s.HistoryMax = int(n)
	if n, err = integer("ttl", ttl, 1, maxRoomTTLSeconds); err != nil {
		return s, err
	}
	s.TTL = time.Duration(n) * time.Second
	if n, err = integer("slow_mode", slowMode, 0, maxSlowModeSecs); err != nil {
		return s, err
	}
	s.SlowMode = time.Duration(n) * time.Second
	s.ReadOnly = readOnly != nil && *readOnly
	return s, nil
}
