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

	"roomcast/broker/chat"
)

// DeadLetters are the webhook events that failed for their maximum age
// (redisscripts.Store).
type DeadLetters interface {
	DeadEvents(ctx context.Context, cursor string, limit int) (chat.DeadPage, error)
	// ReviveDead puts a dead letter back at the end of its room's outbox
	// and returns it, or chat.ErrNoDeadEvent.
	ReviveDead(ctx context.Context, id string) (chat.DeadEvent, error)
}

// MaxDeadPage is the most dead letters one GET /admin/webhooks/dead lists.
const MaxDeadPage = 100

// deadWebhook is a dead letter as the API shows it, times in the form of
// webhook timestamps (milliseconds always).
type deadWebhook struct {
	ID         string          `json:"id"`
	Room       string          `json:"room"`
	Type       string          `json:"type"`
	Timestamp  string          `json:"timestamp"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"last_error"`
	LastStatus int             `json:"last_status,omitempty"`
	DeadAt     string          `json:"dead_at"`
	Data       json.RawMessage `json:"data"`
}

// webhookTime is the form of webhook times (webhook.TimeFormat).
const webhookTime = "2006-01-02T15:04:05.000Z"

func deadWebhookOf(ev chat.DeadEvent) deadWebhook {
	return deadWebhook{ID: ev.ID, Room: ev.Room, Type: ev.Type, Timestamp: ev.Timestamp.UTC().Format(webhookTime),
		Attempts: ev.Attempts, LastError: ev.LastError, LastStatus: ev.LastStatus,
		DeadAt: ev.DeadAt.UTC().Format(webhookTime), Data: ev.Data}
}

// listDeadWebhooks lists the dead letters, the oldest death first.
// GET /admin/webhooks/dead
func (h *Handler) listDeadWebhooks(c echo.Context) error {
	limit := MaxDeadPage
	if v, ok := queryParam(c, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxDeadPage {
			return badRequest(typeInvalidParameter, "Invalid limit", fmt.Sprintf("limit must be 1 to %d", MaxDeadPage))
		}
		limit = n
	}
	cursor, paged := queryParam(c, "cursor")
	if paged {
		if _, _, ok := chat.ParseDeadCursor(cursor); !ok {
			return badRequest(typeInvalidCursor, "Invalid cursor", "cursor must be a next value of an earlier answer")
		}
	}
	out := struct {
		Dead []deadWebhook `json:"dead"`
		Next string        `json:"next,omitempty"`
	}{Dead: []deadWebhook{}}
	if h.Webhooks == nil {
		return c.JSON(http.StatusOK, out)
	}
	page, err := h.Webhooks.DeadEvents(c.Request().Context(), cursor, limit)
	if err != nil {
		return err
	}
	for _, ev := range page.Events {
		out.Dead = append(out.Dead, deadWebhookOf(ev))
	}
	out.Next = page.Next
	return c.JSON(http.StatusOK, out)
}

// retryDeadWebhook moves a dead letter back to its room's outbox, to be
// sent again after the events pending there.
// POST /admin/webhooks/dead/{id}/retry
func (h *Handler) retryDeadWebhook(c echo.Context) error {
	id := c.Param("id")
	var ev chat.DeadEvent
	err := chat.ErrNoDeadEvent
	if h.Webhooks != nil {
		ev, err = h.Webhooks.ReviveDead(c.Request().Context(), id)
	}
	if errors.Is(err, chat.ErrNoDeadEvent) {
		return &Problem{Type: typeNotFound, Title: "Not Found", Status: http.StatusNotFound,
			Detail: "no dead letter has this id"}
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, struct {
		deadWebhook
		RequeuedAt string `json:"requeued_at"`
	}{deadWebhookOf(ev), time.Now().UTC().Format(webhookTime)})
}
