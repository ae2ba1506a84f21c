package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// embeddedTick is how often the embedded Redis moves its TTLs on: a key
// expires up to this much early or late (Redis is exact to the
// millisecond), small beside the shortest TTL roomcast sets, typing's 2 s.
const embeddedTick = 100 * time.Millisecond

// startEmbeddedRedis starts an in-process Redis on a free loopback port
// whose keys expire as they would on Redis, and returns its address and
// the function that stops it.
func startEmbeddedRedis() (addr string, stop func(), _ error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return "", nil, fmt.Errorf("start embedded redis: %w", err)
	}
	done := make(chan struct{})
	var clock sync.WaitGroup
	clock.Go(func() { keepTime(mr, done) })
	return mr.Addr(), sync.OnceFunc(func() { close(done); clock.Wait(); mr.Close() }), nil
}

// keepTime counts the TTLs of mr down with the clock until done is closed.
// miniredis counts them down only in FastForward; without it no key would
// ever expire (typing would show once per user and room, rooms and
// Idempotency-Keys would be kept for ever). miniredis's ClockTTL does this
// on every command, but each count-down walks every key, so it would make
// each command cost O(keys); here the walk runs at most every
// embeddedTick, and less often when it is slow, so that it never takes
// more than about 5% of the time.
func keepTime(mr *miniredis.Miniredis, done <-chan struct{}) {
	timer := time.NewTimer(embeddedTick)
	defer timer.Stop()
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case <-timer.C:
		}
		now := time.Now()
		mr.FastForward(now.Sub(last))
		last = now
		timer.Reset(max(embeddedTick, 20*time.Since(now)))
	}
}
