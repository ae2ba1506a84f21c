package broker

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"time"
)

// backoff waits exponentially longer between retries, with jitter.
type backoff struct{ next time.Duration }

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func newBackoff() *backoff { return &backoff{next: minBackoff} }

func (b *backoff) reset() { b.next = minBackoff }

// wait sleeps for the next interval; it returns false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isTimeout reports whether err is a network timeout. It runs after every
// receive: a nil err returns before errors.As, whose target escapes to the
// heap.
func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// randomName names this process's probe channels.
func randomName() string {
	b := make([]byte, 8)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}
