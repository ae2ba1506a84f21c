package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

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
