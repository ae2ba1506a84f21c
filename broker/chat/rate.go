package chat

import "time"

// RateDecision is a RateLimiter's answer for one event.
type RateDecision struct {
	Allowed    bool
	Limit      int           // events allowed in a burst
	Remaining  int           // events allowed right now, after this one
	RetryAfter time.Duration // until the next event is allowed, when not Allowed
	ResetAfter time.Duration // until the whole burst is available again
}
