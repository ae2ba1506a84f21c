package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/broker/chat"
)

// getMessage returns the latest version of one message, with its version
// as the ETag.
// GET /rooms/{room}/messages/{id}
func (h *Handler) getMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := messageIDParam(c)
	if err != nil {
		return err
	}
	data, err := h.Store.Message(c.Request().Context(), room, id)
	if err != nil {
		return err
	}
	return writeMessage(c, http.StatusOK, data)
}

// messageIDParam is the :id of the request's path, a message id. Echo's
// last parameter takes the rest of the path, slashes and all: a path with
// more segments is one the API does not have.
func messageIDParam(c echo.Context) (chat.ID, error) {
	text := c.Param("id")
	if strings.Contains(text, "/") {
		return chat.ID{}, problemForStatus(http.StatusNotFound)
	}
	id, err := chat.ParseID(text)
	if err != nil {
		return chat.ID{}, errInvalidMessageID
	}
	return id, nil
}

var errInvalidMessageID = badRequest(typeInvalidParameter, "Invalid message id",
	"a message id is the id of a message, as returned by this API")

// writeMessage answers with a stored message as it is stored, its version
// as the ETag.
func writeMessage(c echo.Context, status int, data []byte) error {
	resp := c.Response()
	resp.Header().Set("ETag", etagOf(chat.VersionOf(data)))
	resp.Header()[echo.HeaderContentType] = jsonContentType
	resp.WriteHeader(status)
	if _, err := resp.Write(data); err != nil {
		return err
	}
	_, err := resp.Write(newline)
	return err
}

// etagOf is the entity tag of a message's version.
func etagOf(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// editMessage replaces a message's text (and metadata) and publishes the
// edit; it answers the new version.
// PATCH /rooms/{room}/messages/{id}
func (h *Handler) editMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := messageIDParam(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readBody(c, h.maxBodyBytes())
	if err != nil {
		return err
	}
	edit, bodyUser, err := decodeEdit(body, h.postLimits())
	if err != nil {
		return err
	}
	edit.Room, edit.ID = room, id
	return h.change(c, edit, bodyUser)
}

// deleteMessage turns a message into its tombstone and publishes the
// delete; it answers the tombstone.
// DELETE /rooms/{room}/messages/{id}
func (h *Handler) deleteMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := messageIDParam(c)
	if err != nil {
		return err
	}
	user, given := queryParam(c, "user")
	if given && !validUser(user) {
		return badRequest(typeInvalidParameter, "Invalid user", "user must be 1 to 64 printable characters")
	}
	return h.change(c, chat.Change{Room: room, ID: id, Delete: true}, user)
}

// change runs an edit or delete for the request's user, who must be the
// message's author (as posting names the user) or a moderator of the room.
func (h *Handler) change(c echo.Context, ch chat.Change, user string) error {
	var err error
	if ch.User, err = postingUser(c, user); err != nil {
		return err
	}
	if ch.IdempotencyKey, err = idempotencyKey(c.Request()); err != nil {
		return err
	}
	ch.IfMatch = ifMatchVersions(c.Request().Header.Values("If-Match"))
	ch.Moderator = h.mayModerate(c, ch.Room)
	if !ch.Moderator {
		// A banned author may not change what they wrote either.
		if err := h.refuseBanned(c, ch.Room, ch.User); err != nil {
			return err
		}
	}
	if !ch.Delete {
		edit := chat.Post{Room: ch.Room, User: ch.User, Text: ch.Text, Metadata: ch.Metadata}
		metadataSet, err := h.screen(c, &edit, ch.ID)
		if err != nil {
			return err
		}
		if edit.Sent != nil {
			ch.Sent = &chat.Sent{Text: ch.Text, Metadata: ch.Metadata, SetMetadata: ch.SetMetadata}
		}
		ch.Text, ch.Metadata = edit.Text, edit.Metadata
		ch.SetMetadata = ch.SetMetadata || metadataSet
	}
	ch.EditWindow = h.EditWindow
	changed, err := h.Store.Change(c.Request().Context(), ch)
	if errors.Is(err, chat.ErrVersionMismatch) || errors.Is(err, chat.ErrDeleted) {
		// The message as it is, for the client to start again from.
		c.Response().Header().Set("ETag", etagOf(chat.VersionOf(changed.JSON)))
	}
	if err != nil {
		return err
	}
	if changed.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return writeMessage(c, http.StatusOK, changed.JSON)
}

// ifMatchVersions are the message versions an If-Match header allows: nil
// when there is no header or it is "*" (any current version), else the
// versions of its strong entity tags of ours, possibly none (a weak tag
// never matches, RFC 9110's strong comparison; nor does a tag this API
// never gave).
func ifMatchVersions(values []string) []int64 {
	if len(values) == 0 {
		return nil
	}
	versions := []int64{}
	for _, value := range values {
		for tag := range strings.SplitSeq(value, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return nil
			}
			digits, ok := strings.CutPrefix(tag, `"`)
			digits, ok2 := strings.CutSuffix(digits, `"`)
			v, err := strconv.ParseInt(digits, 10, 64)
			if ok && ok2 && err == nil && v >= 1 && etagOf(v) == tag {
				versions = append(versions, v)
			}
		}
	}
	return versions
}

// decodeEdit validates a PATCH body: one JSON object with a "text" as a
// post's, an optional "metadata" (an object as a post's, or null to remove
// it; absent keeps it) and an optional "user" (returned apart, for
// postingUser); nothing else.
func decodeEdit(body []byte, lim postLimits) (chat.Change, string, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid edit", detail) }
	if !utf8.Valid(body) {
		return chat.Change{}, "", invalid("the body is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return chat.Change{}, "", invalid("the body must be one JSON object")
	}
	var edit chat.Change
	rest := make(map[string]json.RawMessage, len(fields))
	for name, value := range fields {
		switch name {
		case "text", "user":
			rest[name] = value
		case "metadata":
			edit.SetMetadata = true
			if string(bytes.TrimSpace(value)) == "null" {
				continue
			}
			metadata, err := decodeMetadata(value, lim.maxMetadata)
			if err != nil {
				return chat.Change{}, "", err
			}
			edit.Metadata = metadata
		default:
			return chat.Change{}, "", invalid(fmt.Sprintf("unknown field %s", shorten(strconv.QuoteToASCII(name))))
		}
	}
	// Text and user follow a post's rules exactly.
	plain, err := json.Marshal(rest)
	if err != nil {
		return chat.Change{}, "", fmt.Errorf("re-encode edit: %w", err)
	}
	post, err := decodePost(plain, lim)
	if err != nil {
		return chat.Change{}, "", err
	}
	edit.Text = post.Text
	return edit, post.User, nil
}
