package app

import (
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/api/metrics"
	"roomcast/broker/webhook"
	"roomcast/broker/webhook/signature"
	"roomcast/redisscripts"
)

// Webhooks are the settings of webhooks out, each field from the variable
// of its name with WEBHOOK_ in front (URL from WEBHOOK_URL, and so on).
type Webhooks struct {
	URL     string // empty: webhooks are off
	Secret  signature.Secret
	Events  []string // the event types sent (chat.WebhookEventTypes); empty: none
	MaxAge  time.Duration
	Lease   time.Duration
	Timeout time.Duration
	// FirstRetry and MaxRetryDelay shape the backoff (webhook.Options);
	// zero: 1s and 1m. Tests shorten them.
	FirstRetry, MaxRetryDelay time.Duration
}

func (w Webhooks) events() []string {
	if w.URL == "" {
		return nil
	}
	return w.Events
}

// deliverer is the webhook deliverer of w, or nil when webhooks are off.
func (w Webhooks) deliverer(store *redisscripts.Store, rdb redis.UniversalClient, redisTimeout time.Duration,
	m *metrics.Metrics, log *slog.Logger) *webhook.Deliverer {
	if w.URL == "" {
		return nil
	}
	// A standalone Redis has one bucket to look at, a Cluster one per
	// slot (16384 reads): look there less often.
	scan := 50 * time.Millisecond
	if _, cluster := rdb.(*redis.ClusterClient); cluster {
		scan = time.Second
	}
	d := webhook.New(webhook.Options{
		Outbox: store, WebhookURL: w.URL, WebhookSecret: w.Secret, WebhookLease: w.Lease,
		WebhookTimeout: w.Timeout, WebhookMaxAge: w.MaxAge, ScanInterval: scan,
		FirstRetry: w.FirstRetry, MaxRetryDelay: w.MaxRetryDelay, RedisTimeout: redisTimeout, Logger: log,
	})
	m.ObserveWebhooks(d.Stats)
	return d
}
