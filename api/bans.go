package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
	"roomcast/broker/chat"
)

// BanStore stores bans and revocations (redisscripts.Store); each change
// is announced to every instance's ControlState.
type BanStore interface {
	SetBan(ctx context.Context, b chat.Ban) (created bool, err error)
	LiftBan(ctx context.Context, room, user string) error
	Bans(ctx context.Context, room string) ([]chat.Ban, error)
	Revoke(ctx context.Context, r chat.Revocation) error
}

// ControlState answers from memory which bans and revocations are in
// force (broker/control.Watcher), so that checking a request costs no
// Redis round trip.
type ControlState interface {
	Ban(room, user string) (chat.Ban, bool)
	Revoked(user, jti string, iat time.Time) bool
	// Apply applies a change this instance made at once, and enforces it
	// on its streams, before the control channel brings it.
	Apply(c chat.Control)
}

// DefaultRevocationTTL is how long a revocation is kept when its tokens'
// expiry is not given: longer than the tokens of most deployments live.
const DefaultRevocationTTL = 24 * time.Hour

const (
	maxReasonRunes = 500
	maxJTIBytes    = 256
)

// putBan bans a user from a room, or replaces their ban.
// PUT /rooms/{room}/bans/{user}
func (h *Handler) putBan(c echo.Context) error {
	room, user, err := banParams(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, 4096)
	if err != nil {
		return err
	}
	if len(body) > 0 {
		if err := requireJSON(c.Request()); err != nil {
			return err
		}
	}
	b, err := decodeBan(body, time.Now())
	if err != nil {
		return err
	}
	b.Room, b.User, b.By, b.At = room, user, actingUser(c), time.Now().UTC().Truncate(time.Millisecond)
	created, err := h.Bans.SetBan(c.Request().Context(), b)
	if err != nil {
		return err
	}
	h.applyLocally(chat.Control{Op: chat.ControlBan, Ban: &b})
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, b)
}

// deleteBan lifts a user's ban in a room.
// DELETE /rooms/{room}/bans/{user}
func (h *Handler) deleteBan(c echo.Context) error {
	room, user, err := banParams(c)
	if err != nil {
		return err
	}
	if err := h.Bans.LiftBan(c.Request().Context(), room, user); errors.Is(err, chat.ErrNoBan) {
		return &Problem{Type: typeNotFound, Title: "Not Found", Status: http.StatusNotFound,
			Detail: "the user is not banned from this room"}
	} else if err != nil {
		return err
	}
	h.applyLocally(chat.Control{Op: chat.ControlLift, Ban: &chat.Ban{Room: room, User: user}})
	return c.NoContent(http.StatusNoContent)
}

// listBans lists a room's bans in force, oldest first.
// GET /rooms/{room}/bans
func (h *Handler) listBans(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	bans, err := h.Bans.Bans(c.Request().Context(), room)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		Bans []chat.Ban `json:"bans"`
	}{bans})
}

// revokeTokens revokes one token by its jti, or every token of a user
// issued before a time.
// POST /admin/tokens/revoke
func (h *Handler) revokeTokens(c echo.Context) error {
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readBody(c, 4096)
	if err != nil {
		return err
	}
	now := time.Now()
	r, err := decodeRevocation(body, now, h.revocationTTL())
	if err != nil {
		return err
	}
	if err := h.Bans.Revoke(c.Request().Context(), r); err != nil {
		return err
	}
	h.applyLocally(chat.Control{Op: chat.ControlRevoke, Revocation: &r})
	return c.JSON(http.StatusOK, r)
}

// applyLocally makes this instance's next request see a change it just
// stored: the control channel would bring it a moment later.
func (h *Handler) applyLocally(c chat.Control) {
	if h.Control != nil {
		h.Control.Apply(c)
	}
}

func (h *Handler) revocationTTL() time.Duration {
	if h.RevocationTTL > 0 {
		return h.RevocationTTL
	}
	return DefaultRevocationTTL
}

// banParams are the :room and the :user (percent-decoded) of a ban's path.
func banParams(c echo.Context) (room, user string, err error) {
	if room, err = roomParam(c); err != nil {
		return "", "", err
	}
	user = c.Param("user")
	if c.Request().URL.RawPath != "" {
		if user, err = url.PathUnescape(user); err != nil {
			user = ""
		}
	}
	if !validUser(user) {
		return "", "", badRequest(typeInvalidParameter, "Invalid user", "user must be 1 to 64 printable characters")
	}
	return room, user, nil
}

// actingUser names who makes a request, for the record: the token's
// subject, "system" for a server API key, "anonymous" in open mode.
func actingUser(c echo.Context) string {
	claims, ok := c.Get(claimsKey).(auth.Claims)
	switch {
	case !ok:
		return "anonymous"
	case claims.Server():
		return serverUser
	}
	return claims.Subject
}

// decodeFields decodes body as one JSON object with only the fields
// named; invalid gives the problem for a detail.
func decodeFields(body []byte, invalid func(string) error, fields map[string]any) error {
	if !utf8.Valid(body) {
		return invalid("the body is not valid UTF-8")
	}
	// A map, not a struct: encoding/json matches struct fields ignoring
	// case.
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return invalid(jsonErrorDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("the body must hold exactly one JSON object")
	}
	for name, value := range raw {
		dst, ok := fields[name]
		if !ok {
			return invalid(fmt.Sprintf("unknown field %s", shorten(strconv.QuoteToASCII(name))))
		}
		if string(value) == "null" || json.Unmarshal(value, dst) != nil {
			return invalid(fmt.Sprintf("%q has the wrong type", name))
		}
		if loneSurrogate(value) {
			return invalid(fmt.Sprintf("%q escapes half of a UTF-16 surrogate pair, which is not a character", name))
		}
	}
	return nil
}

// decodeBan validates a ban's body, which may be empty: an optional
// "until" after now and an optional "reason".
func decodeBan(body []byte, now time.Time) (chat.Ban, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid ban", detail) }
	var b chat.Ban
	if len(bytes.TrimSpace(body)) == 0 {
		return b, nil
	}
	var until *time.Time
	var reason *string
	if err := decodeFields(body, invalid, map[string]any{"until": &until, "reason": &reason}); err != nil {
		return b, err
	}
	if until != nil {
		if !until.After(now) {
			return b, invalid(`"until" must be in the future`)
		}
		t := until.UTC().Truncate(time.Millisecond)
		b.Until = &t
	}
	if reason != nil {
		if !validText(*reason, maxReasonRunes) {
			return b, invalid(fmt.Sprintf(`"reason" must be 1 to %d printable characters`, maxReasonRunes))
		}
		b.Reason = *reason
	}
	return b, nil
}

// decodeRevocation validates a revocation's body: {"jti"} or {"user",
// "issued_before"}, with an optional "expires_at", the latest expiry of
// the tokens it revokes (else now plus ttl).
func decodeRevocation(body []byte, now time.Time, ttl time.Duration) (chat.Revocation, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid revocation", detail) }
	var jti, user *string
	var before, expires *time.Time
	if err := decodeFields(body, invalid, map[string]any{"jti": &jti, "user": &user,
		"issued_before": &before, "expires_at": &expires}); err != nil {
		return chat.Revocation{}, err
	}
	var r chat.Revocation
	switch {
	case jti != nil && (user != nil || before != nil):
		return r, invalid(`give either "jti" or "user" with "issued_before"`)
	case jti != nil:
		if *jti == "" || len(*jti) > maxJTIBytes || !validText(*jti, maxJTIBytes) {
			return r, invalid(fmt.Sprintf(`"jti" must be 1 to %d printable characters`, maxJTIBytes))
		}
		r.JTI = *jti
	case user == nil || before == nil:
		return r, invalid(`give either "jti" or "user" with "issued_before"`)
	default:
		if !validUser(*user) {
			return r, invalid(`"user" must be 1 to 64 printable characters`)
		}
		r.User, r.IssuedBefore = *user, before.UTC().Truncate(time.Millisecond)
	}
	r.Expires = now.Add(ttl).UTC().Truncate(time.Millisecond)
	if expires != nil {
		if !expires.After(now) {
			return chat.Revocation{}, invalid(`"expires_at" must be in the future`)
		}
		r.Expires = expires.UTC().Truncate(time.Millisecond)
	}
	return r, nil
}

// validText reports whether s is 1 to maxRunes printable characters.
func validText(s string, maxRunes int) bool {
	if n := utf8.RuneCountInString(s); n < 1 || n > maxRunes {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// refuseBanned answers 403 when user is banned from room. Requests with a
// server API key act for the backend and are never refused.
func (h *Handler) refuseBanned(c echo.Context, room, user string) error {
	if h.Control == nil || user == "" || isServer(c) {
		return nil
	}
	b, ok := h.Control.Ban(room, user)
	if !ok {
		return nil
	}
	detail := "the user is banned from room " + b.Room
	if b.Until != nil {
		detail += " until " + b.Until.Format(time.RFC3339)
	}
	// The challenge of every 403: no token grants more here.
	c.Response().Header().Set(echo.HeaderWWWAuthenticate,
		realm+`, error="insufficient_scope", error_description="`+challengeText(detail)+`"`)
	return &Problem{Type: typeBanned, Title: "Banned", Status: http.StatusForbidden, Detail: detail}
}
