package redisscripts

import (
	"testing"
	"time"
)

func TestRateLimiterAllowsABurstThenRefuses(t *testing.T) {
	t.Parallel()
	_, srv, rdb := newStore(t, StoreOptions{})
	keys := NewKeys("test:")
	// One post a minute on average: nothing refills while the test runs.
	one := NewRateLimiter(rdb, keys, "post", 1.0/60, 3)
	other := NewRateLimiter(srv.Client(), keys, "post", 1.0/60, 3) // a second instance

	for i, l := range []*RateLimiter{one, other, one} {
		d, err := l.Allow(t.Context(), "ip:10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
			t.Fatalf("event %d: %+v, want allowed with %d remaining", i+1, d, 2-i)
		}
		if want := time.Duration(i+1) * time.Minute; d.ResetAfter < want-time.Second || d.ResetAfter > want {
			t.Fatalf("event %d: ResetAfter = %v, want about %v", i+1, d.ResetAfter, want)
		}
	}
	for range 2 { // refused events do not count
		d, err := other.Allow(t.Context(), "ip:10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed || d.Remaining != 0 || d.RetryAfter < 59*time.Second || d.RetryAfter > time.Minute {
			t.Fatalf("fourth event: %+v, want refused with RetryAfter about 1m", d)
		}
	}
	if d, err := one.Allow(t.Context(), "ip:10.0.0.2"); err != nil || !d.Allowed {
		t.Fatalf("another client: %+v %v, want allowed", d, err)
	}

	keysNow, err := rdb.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keysNow {
		if k != "test:rate:post:ip:10.0.0.1" && k != "test:rate:post:ip:10.0.0.2" {
			t.Fatalf("unexpected key %q", k)
		}
		if ttl := rdb.PTTL(t.Context(), k).Val(); ttl <= 0 || ttl > 3*time.Minute {
			t.Fatalf("key %q has TTL %v, want to expire once the client is idle", k, ttl)
		}
	}
}

func TestRateLimiterRefills(t *testing.T) {
	t.Parallel()
	_, _, rdb := newStore(t, StoreOptions{})
	l := NewRateLimiter(rdb, NewKeys("test:"), "post", 50, 1) // one every 20ms
	if d, _ := l.Allow(t.Context(), "c"); !d.Allowed {
		t.Fatalf("first event refused")
	}
	d, err := l.Allow(t.Context(), "c")
	if err != nil || d.Allowed {
		t.Fatalf("second event at once: %+v %v, want refused", d, err)
	}
	time.Sleep(d.RetryAfter) // the limiter's own answer is the event awaited
	if d, _ := l.Allow(t.Context(), "c"); !d.Allowed {
		t.Fatalf("event after RetryAfter refused: %+v", d)
	}
}
