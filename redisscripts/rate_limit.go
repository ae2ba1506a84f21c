package redisscripts

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

//go:embed rate_limit.lua
var rateLimitSource string

var rateLimitScript = redis.NewScript(rateLimitSource)

// RateLimiter limits how often each client may do something, with the
// state in Redis so that every instance sharing the Redis shares the limit.
type RateLimiter struct {
	rdb      redis.Cmdable
	keys     Keys
	name     string
	interval time.Duration
	burst    int
}

// NewRateLimiter allows each client perSecond events a second on average
// and burst at once. name tells limits apart in the key,
// <prefix>rate:<name>:<client>.
func NewRateLimiter(rdb redis.Cmdable, keys Keys, name string, perSecond float64, burst int) *RateLimiter {
	return &RateLimiter{
		rdb: rdb, keys: keys, name: name, burst: burst,
		interval: max(time.Duration(float64(time.Second)/perSecond), time.Microsecond),
	}
}

// Allow counts one event of client and reports whether it is allowed. A
// refused event does not count against the client.
func (l *RateLimiter) Allow(ctx context.Context, client string) (chat.RateDecision, error) {
	reply, err := rateLimitScript.Run(ctx, l.rdb, []string{l.keys.rate(l.name, client)},
		l.interval.Microseconds(), l.burst).Int64Slice()
	if err != nil {
		return chat.RateDecision{}, wrapRedisError("rate limit", err)
	}
	if len(reply) != 4 {
		return chat.RateDecision{}, fmt.Errorf("rate limit: unexpected reply length %d", len(reply))
	}
	return chat.RateDecision{
		Allowed:    reply[0] == 1,
		Limit:      l.burst,
		Remaining:  int(reply[1]),
		RetryAfter: time.Duration(reply[2]) * time.Microsecond,
		ResetAfter: time.Duration(reply[3]) * time.Microsecond,
	}, nil
}
