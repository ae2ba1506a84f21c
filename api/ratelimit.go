package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/broker/chat"
)

// PostLimiter decides whether a client may post now. Each allowed call
// counts as one post.
type PostLimiter interface {
	Allow(ctx context.Context, client string) (chat.RateDecision, error)
}

// limitPosts answers 429 to a client over its post rate. Every answer
// carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset. Posts
// with a server API key are not limited: the backend is trusted, and its
// posts are on behalf of many users.
func (h *Handler) limitPosts(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.Security.Posts == nil || isServer(c) {
			return next(c)
		}
		d, err := h.Security.Posts.Allow(c.Request().Context(), clientKey(c))
		if err != nil {
			h.log.Warn("rate limiter failed", "err", err)
			return &Problem{Type: typeUnavailable, Title: "Service unavailable", Status: http.StatusServiceUnavailable,
				Detail: "the message store cannot be reached; retry shortly", retryAfter: 1}
		}
		header := c.Response().Header()
		header.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
		header.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
		header.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter)))
		if !d.Allowed {
			return &Problem{Type: typeRateLimited, Title: "Too many posts", Status: http.StatusTooManyRequests,
				Detail: "this client posts faster than allowed; retry after the delay given", retryAfter: max(1, ceilSeconds(d.RetryAfter))}
		}
		return next(c)
	}
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(max(d, 0).Seconds()))
}

// streamCounter counts open streams, in all and per client.
type streamCounter struct {
	mu        sync.Mutex
	total     int
	perClient map[string]int
}

// errServerFull means the process has MaxStreams streams open.
var errServerFull = errors.New("stream limit of the process reached")

// admitStream answers 429 to a client that has MaxStreamsPerClient
// streams open, and errServerFull when the process has MaxStreams open
// (the caller refuses the stream as a passing condition: 200, a retry
// advice, and the end of the stream). Otherwise it counts the stream until
// release is called.
func (h *Handler) admitStream(c echo.Context) (release func(), err error) {
	maxTotal, maxPerClient := h.Security.MaxStreams, h.Security.MaxStreamsPerClient
	if maxTotal <= 0 && maxPerClient <= 0 {
		return func() {}, nil
	}
	key := clientKey(c)
	if err := h.streams.acquire(key, maxTotal, maxPerClient); err != nil {
		var p *Problem
		if errors.As(err, &p) {
			p.retryAfter = max(1, ceilSeconds(h.Frames.SSERetry)) // as long as a stream's own retry delay
		}
		return nil, err
	}
	return sync.OnceFunc(func() { h.streams.release(key) }), nil
}

func (s *streamCounter) acquire(key string, maxTotal, maxPerClient int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxTotal > 0 && s.total >= maxTotal {
		return errServerFull
	}
	if maxPerClient > 0 && s.perClient[key] >= maxPerClient {
		return &Problem{Type: typeTooManyStreams, Title: "Too many streams", Status: http.StatusTooManyRequests,
			Detail: "this client has as many open streams as allowed; close one first"}
	}
	s.total++
	s.perClient[key]++
	return nil
}

func (s *streamCounter) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perClient[key]--; s.perClient[key] <= 0 {
		delete(s.perClient, key)
	}
}
