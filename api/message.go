package api

import (
	"net/http"
	"strconv"
	"strings"

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
