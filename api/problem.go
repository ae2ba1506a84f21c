package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/broker"
	"roomcast/broker/chat"
)

// Problem is an RFC 9457 problem details response. Handlers return it as
// an error; handleError writes it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`

	retryAfter int // seconds; sent as Retry-After when positive
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// The problem types roomcast answers with. openapi.yaml lists the same.
const (
	typeInvalidRoom         = "urn:roomcast:problem:invalid-room"
	typeInvalidCursor       = "urn:roomcast:problem:invalid-cursor"
	typeInvalidParameter    = "urn:roomcast:problem:invalid-parameter"
	typeInvalidBody         = "urn:roomcast:problem:invalid-body"
	typeIdempotencyConflict = "urn:roomcast:problem:idempotency-conflict"
	typeBodyTooLarge        = "urn:roomcast:problem:body-too-large"
	typeUnsupportedMedia    = "urn:roomcast:problem:unsupported-media-type"
	typeNotFound            = "urn:roomcast:problem:not-found"
	typeMethodNotAllowed    = "urn:roomcast:problem:method-not-allowed"
	typeUnavailable         = "urn:roomcast:problem:unavailable"
	typeInternal            = "urn:roomcast:problem:internal"
	typeUnauthorized        = "urn:roomcast:problem:unauthorized"
	typeTokenExpired        = "urn:roomcast:problem:token-expired"
	typeForbidden           = "urn:roomcast:problem:forbidden"
	typeBanned              = "urn:roomcast:problem:banned"
	typeReadOnly            = "urn:roomcast:problem:read-only"
	typeSlowMode            = "urn:roomcast:problem:slow-mode"
	typeRejected            = "urn:roomcast:problem:rejected"
	typeTokenRevoked        = "urn:roomcast:problem:token-revoked"
	typeRateLimited         = "urn:roomcast:problem:rate-limited"
	typeTooManyStreams      = "urn:roomcast:problem:too-many-streams"
	typeRequestTimeout      = "urn:roomcast:problem:request-timeout"
	typeMessageDeleted      = "urn:roomcast:problem:message-deleted"
	typeVersionMismatch     = "urn:roomcast:problem:version-mismatch"
)

func badRequest(typ, title, detail string) *Problem {
	return &Problem{Type: typ, Title: title, Status: http.StatusBadRequest, Detail: detail}
}

var errInvalidRoom = badRequest(typeInvalidRoom, "Invalid room id",
	"a room id is 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'")

// problemFor maps an error from a handler, Echo or a lower layer to the
// problem it is answered with. 5xx problems never carry internal detail.
func problemFor(err error) *Problem {
	var p *Problem
	var he *echo.HTTPError
	var slow *chat.SlowModeError
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, chat.ErrIdempotencyConflict):
		return &Problem{Type: typeIdempotencyConflict, Title: "Idempotency key reused", Status: http.StatusUnprocessableEntity,
			Detail: "this Idempotency-Key was already used for a message with other content"}
	case errors.Is(err, chat.ErrNotAuthor):
		return &Problem{Type: typeForbidden, Title: "Forbidden", Status: http.StatusForbidden,
			Detail: "only the message's author or a moderator of the room may change it"}
	case errors.Is(err, chat.ErrEditWindow):
		return &Problem{Type: typeForbidden, Title: "Forbidden", Status: http.StatusForbidden,
			Detail: "the time in which the author may change this message has passed"}
	case errors.Is(err, chat.ErrDeleted):
		return &Problem{Type: typeMessageDeleted, Title: "Message deleted", Status: http.StatusConflict,
			Detail: "the message is deleted; a tombstone cannot be changed"}
	case errors.Is(err, chat.ErrVersionMismatch):
		return &Problem{Type: typeVersionMismatch, Title: "Precondition Failed", Status: http.StatusPreconditionFailed,
			Detail: "the message has another version than If-Match names; its ETag is the current one"}
	case errors.Is(err, chat.ErrReadOnly):
		return &Problem{Type: typeReadOnly, Title: "Read-only room", Status: http.StatusForbidden,
			Detail: "the room is read-only: only its moderators may post"}
	case errors.As(err, &slow):
		return &Problem{Type: typeSlowMode, Title: "Slow mode", Status: http.StatusTooManyRequests,
			Detail:     "the room is in slow mode: post again after Retry-After seconds",
			retryAfter: int((slow.RetryAfter + time.Second - 1) / time.Second)}
	case errors.Is(err, chat.ErrUnknownReply):
		return badRequest(typeInvalidBody, "Invalid message", `"reply_to" names no message of this room`)
	case errors.Is(err, chat.ErrEmptyRoom):
		return &Problem{Type: typeNotFound, Title: "Not Found", Status: http.StatusNotFound,
			Detail: "the room has no messages"}
	case errors.Is(err, chat.ErrUnknownMessage):
		return &Problem{Type: typeNotFound, Title: "Not Found", Status: http.StatusNotFound,
			Detail: "no message of the room has this id"}
	case errors.Is(err, chat.ErrUnavailable), errors.Is(err, broker.ErrClosed):
		return &Problem{Type: typeUnavailable, Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the message store cannot be reached; retry shortly", retryAfter: 1}
	case isReadTimeout(err):
		return errBodyTimeout
	case errors.As(err, &he):
		return problemForStatus(he.Code)
	}
	return &Problem{Type: typeInternal, Title: "Internal server error", Status: http.StatusInternalServerError}
}

func problemForStatus(status int) *Problem {
	p := &Problem{Status: status, Title: http.StatusText(status)}
	switch status {
	case http.StatusNotFound:
		p.Type, p.Detail = typeNotFound, "no such resource"
	case http.StatusMethodNotAllowed:
		p.Type, p.Detail = typeMethodNotAllowed, "this resource does not support the request's method"
	case http.StatusRequestEntityTooLarge:
		p.Type, p.Detail = typeBodyTooLarge, "the request body is larger than allowed"
	case http.StatusUnsupportedMediaType:
		p.Type, p.Detail = typeUnsupportedMedia, "send the body as application/json"
	default:
		if status >= 500 {
			p.Type = typeInternal
		} else {
			p.Type = typeInvalidParameter
		}
	}
	return p
}

// handleError is Echo's HTTPErrorHandler: it writes every error as problem
// JSON and logs server-side failures with their cause.
func (h *Handler) handleError(err error, c echo.Context) {
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		return // the client went away; nobody reads the answer
	}
	p := problemFor(err)
	if p.Status >= 500 {
		h.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", p.Status, "err", err)
	}
	if c.Response().Committed {
		return
	}
	if p.retryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	body, _ := json.Marshal(p)
	body = append(body, '\n') // as echo's c.JSON ends every JSON answer
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method != http.MethodHead {
		_, _ = c.Response().Write(body)
	}
}
