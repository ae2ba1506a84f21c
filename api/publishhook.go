package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/hook"
	"roomcast/broker/chat"
)

// PublishHook asks the backend about a message before it is stored
// (api/hook.Client).
type PublishHook interface {
	Applies(room string) bool
	Screen(ctx context.Context, m hook.Message) (hook.Verdict, error)
}

var _ PublishHook = (*hook.Client)(nil)

// errHookUnavailable answers a post the hook could not decide in time
// under PUBLISH_HOOK_ON_ERROR=reject.
var errHookUnavailable = &Problem{Type: typeUnavailable, Title: "Service unavailable", Status: http.StatusServiceUnavailable,
	Detail: "the message could not be screened in time; retry shortly", retryAfter: 1}

// screen has the publish hook decide on post, a user's post or edit (of
// the message editOf; zero for a post), and applies its rewrite. Requests
// with a server API key are the backend's own and are not screened. A
// rejection is a 422; no usable answer follows PublishHookAcceptOnError.
// metadataSet tells that the rewrite set the metadata (maybe to none).
func (h *Handler) screen(c echo.Context, post *chat.Post, editOf chat.ID) (metadataSet bool, err error) {
	if h.PublishHook == nil || isServer(c) || !h.PublishHook.Applies(post.Room) {
		return false, nil
	}
	m := hook.Message{Room: post.Room, User: post.User, Text: post.Text}
	if post.Metadata != "" {
		m.Metadata = json.RawMessage(post.Metadata)
	}
	if editOf != (chat.ID{}) {
		m.EditOf = editOf.String()
	}
	sent := chat.Sent{Text: post.Text, Metadata: post.Metadata}
	start := time.Now()
	v, err := h.PublishHook.Screen(c.Request().Context(), m)
	rewritten := false
	if err == nil && v.Accept {
		rewritten, err = h.rewrite(post, v)
		metadataSet = rewritten && v.Metadata != nil
	}
	outcome := "accepted"
	switch {
	case err != nil:
		outcome = "failed"
	case !v.Accept:
		outcome = "rejected"
	case rewritten:
		outcome = "rewritten"
	}
	h.Metrics.PublishHookAsked(outcome, time.Since(start))
	switch {
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		return false, err // the client went away
	case err != nil:
		h.log.Warn("publish hook: no usable answer", "room", post.Room, "accept_on_error", h.PublishHookAcceptOnError, "err", err)
		if h.PublishHookAcceptOnError {
			return false, nil
		}
		return false, errHookUnavailable
	case !v.Accept:
		detail := v.Reason
		if detail == "" {
			detail = "the message was rejected"
		}
		return false, &Problem{Type: typeRejected, Title: "Message rejected", Status: http.StatusUnprocessableEntity, Detail: detail}
	}
	if rewritten {
		post.Sent = &sent
	}
	return metadataSet, nil
}

// rewrite applies an accepting verdict's text and metadata to post, checked
// as a post's are; a rewrite a post could not carry is the hook's error.
func (h *Handler) rewrite(post *chat.Post, v hook.Verdict) (bool, error) {
	if v.Text == nil && v.Metadata == nil {
		return false, nil
	}
	text := post.Text
	if v.Text != nil {
		text = *v.Text
	}
	encoded, err := json.Marshal(text)
	if err != nil {
		return false, fmt.Errorf("encode rewritten text: %w", err)
	}
	fields := map[string]json.RawMessage{"text": encoded}
	switch {
	case string(v.Metadata) == "null":
		// The rewrite drops the metadata.
	case v.Metadata != nil:
		fields["metadata"] = v.Metadata
	case post.Metadata != "":
		fields["metadata"] = json.RawMessage(post.Metadata)
	}
	checked, err := postFields(fields, h.postLimits())
	var p *Problem
	if errors.As(err, &p) {
		return false, fmt.Errorf("%w: rewrite refused: %s", hook.ErrNoAnswer, p.Detail)
	}
	if err != nil {
		return false, err
	}
	post.Text, post.Metadata = checked.Text, checked.Metadata
	return true, nil
}
