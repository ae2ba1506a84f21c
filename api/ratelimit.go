package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// PostLimiter decides whether a client may post now. Each call counts as
// one post attempt.
type PostLimiter interface {
	AllowPost(ctx context.Context, client string) (RateDecision, error)
}

// RateDecision is a PostLimiter's answer.
type RateDecision struct {
	Allowed    bool
	Limit      int           // posts allowed in a burst
	Remaining  int           // posts allowed right now
	RetryAfter time.Duration // until the next post is allowed, when not Allowed
	ResetAfter time.Duration // until the whole burst is available again
}

// RedisPostLimiter is a PostLimiter kept in Redis by the GCRA algorithm
// of redis_rate, so that instances sharing a Redis share the limits.
type RedisPostLimiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	prefix  string
}

var _ PostLimiter = (*RedisPostLimiter)(nil)

// NewRedisPostLimiter allows each client perSecond posts a second on
// average and up to burst at once. A client's state is one key,
// prefix+"rate:post:"+client, which expires when the client is idle.
func NewRedisPostLimiter(rdb redis.UniversalClient, prefix string, perSecond float64, burst int) *RedisPostLimiter {
	return &RedisPostLimiter{
		limiter: redis_rate.NewLimiter(rateKeys{rdb}),
		limit:   redis_rate.Limit{Rate: 1, Period: time.Duration(float64(time.Second) / perSecond), Burst: burst},
		prefix:  prefix,
	}
}

// AllowPost counts a post by client and reports whether it is allowed.
func (l *RedisPostLimiter) AllowPost(ctx context.Context, client string) (RateDecision, error) {
	res, err := l.limiter.Allow(ctx, l.prefix+"rate:post:"+client, l.limit)
	if err != nil {
		return RateDecision{}, fmt.Errorf("rate limit: %w", err)
	}
	return RateDecision{
		Allowed: res.Allowed > 0, Limit: l.limit.Burst, Remaining: res.Remaining,
		RetryAfter: res.RetryAfter, ResetAfter: res.ResetAfter,
	}, nil
}

// rateKeys passes the calls of redis_rate on to a client, taking off the
// "rate:" that redis_rate puts before every key, so that all of roomcast's
// keys start with its KEY_PREFIX and deployments sharing a Redis stay apart.
type rateKeys struct {
	redis.UniversalClient // ScriptExists and ScriptLoad pass through unchanged
}

func (r rateKeys) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.Eval(ctx, script, unrated(keys), args...)
}

func (r rateKeys) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.EvalSha(ctx, sha1, unrated(keys), args...)
}

func (r rateKeys) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.EvalRO(ctx, script, unrated(keys), args...)
}

func (r rateKeys) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return r.UniversalClient.EvalShaRO(ctx, sha1, unrated(keys), args...)
}

func (r rateKeys) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return r.UniversalClient.Del(ctx, unrated(keys)...)
}

func unrated(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, "rate:")
	}
	return out
}

// limitPosts answers 429 to a client over its post rate. Every answer
// carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset.
func (h *Handler) limitPosts(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.Security.Posts == nil {
			return next(c)
		}
		d, err := h.Security.Posts.AllowPost(c.Request().Context(), clientKey(c))
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

// limitStreams answers 429 to a client that has MaxStreamsPerClient
// streams open and 503 when the process has MaxStreams open.
func (h *Handler) limitStreams() echo.MiddlewareFunc {
	maxTotal, maxPerClient := h.Security.MaxStreams, h.Security.MaxStreamsPerClient
	counter := &streamCounter{perClient: make(map[string]int)}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if maxTotal <= 0 && maxPerClient <= 0 {
				return next(c)
			}
			key := clientKey(c)
			if err := counter.acquire(key, maxTotal, maxPerClient); err != nil {
				return err
			}
			defer counter.release(key)
			return next(c)
		}
	}
}

func (s *streamCounter) acquire(key string, maxTotal, maxPerClient int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxTotal > 0 && s.total >= maxTotal {
		return &Problem{Type: typeUnavailable, Title: "Too many streams", Status: http.StatusServiceUnavailable,
			Detail: "this server has as many open streams as it serves; retry shortly", retryAfter: 5}
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
