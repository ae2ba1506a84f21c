// Package webhook delivers the events of the rooms' outboxes to the
// deployment's webhook receiver: each room's events in order, the next one
// after the previous got a 2xx, each room held by one instance at a time
// under a lease, failures retried with exponential backoff and jitter
// until they are too old and become dead letters. It runs beside posting
// and streaming and never holds them up: its Redis calls are few, batched
// and its own, and it waits for the receiver on its own goroutines.
package webhook

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"roomcast/broker/chat"
	"roomcast/broker/webhook/signature"
)

// Outbox is the Redis side of webhooks (redisscripts.Store).
type Outbox interface {
	DueRooms(ctx context.Context, limit int) ([]string, error)
	ClaimOutbox(ctx context.Context, room, token string, lease time.Duration, delivered []string, count int) (chat.OutboxBatch, error)
	FailOutbox(ctx context.Context, room, token string, f chat.OutboxFailure) (chat.FailOutcome, error)
	OutboxStats(ctx context.Context, maxRooms int) (chat.OutboxStats, error)
}

// Options configure a Deliverer. Fields named after a setting take its
// value (WebhookURL from WEBHOOK_URL, and so on).
type Options struct {
	Outbox        Outbox
	WebhookURL    string
	WebhookSecret signature.Secret
	// WebhookLease is how long a room stays with the instance delivering
	// it without word from it; another instance takes over after it.
	WebhookLease time.Duration
	// WebhookTimeout bounds one request, answer included; less than the
	// lease, so that a live holder never overlaps with a successor.
	WebhookTimeout time.Duration
	// WebhookMaxAge is how long an event is retried before it becomes a
	// dead letter.
	WebhookMaxAge time.Duration
	// ScanInterval is how often the rooms with due events are looked for.
	ScanInterval time.Duration
	// StatsInterval is how often the queue's figures are read; 0: 5s.
	StatsInterval time.Duration
	// Rooms bounds the rooms this instance delivers at once; 0: 256.
	Rooms int
	// Batch is the events read per claim; 0: 64.
	Batch int
	// FirstRetry is the delay after a first failure (0: 1s); it doubles
	// with each further one up to MaxRetryDelay (0: 1m), jittered.
	FirstRetry    time.Duration
	MaxRetryDelay time.Duration
	// RedisTimeout bounds each Redis call.
	RedisTimeout time.Duration
	Client       *http.Client // nil: one of the Deliverer's own
	Logger       *slog.Logger
}

// Stats are a Deliverer's counters since it started.
type Stats struct {
	Delivered uint64           // requests answered 2xx
	Failed    uint64           // requests that failed and will be retried
	Dead      uint64           // events that became dead letters here
	Active    int              // rooms being delivered now
	Queue     chat.OutboxStats // as last read, every StatsInterval
}

// Deliverer sends the outboxes' events. Run it once.
type Deliverer struct {
	opts   Options
	log    *slog.Logger
	client *http.Client

	mu     sync.Mutex
	active map[string]struct{} // rooms with a goroutine here
	freed  chan struct{}       // a room's goroutine ended

	delivered, failed, dead atomic.Uint64
	queue                   atomic.Pointer[chat.OutboxStats]
}

// New returns a Deliverer; Options' zero values take the defaults named.
func New(opts Options) *Deliverer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Rooms <= 0 {
		opts.Rooms = 256
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = 5 * time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.FirstRetry <= 0 {
		opts.FirstRetry = time.Second
	}
	if opts.MaxRetryDelay <= 0 {
		opts.MaxRetryDelay = time.Minute
	}
	client := opts.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = opts.Rooms // one kept-alive connection per room in flight
		client = &http.Client{Transport: tr}
	}
	// A redirect is a failure (Standard Webhooks: update the URL instead).
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Deliverer{opts: opts, log: opts.Logger, client: &c,
		active: make(map[string]struct{}), freed: make(chan struct{}, 1)}
}

// Stats returns the counters; safe at any time.
func (d *Deliverer) Stats() Stats {
	d.mu.Lock()
	active := len(d.active)
	d.mu.Unlock()
	st := Stats{Delivered: d.delivered.Load(), Failed: d.failed.Load(), Dead: d.dead.Load(), Active: active}
	if q := d.queue.Load(); q != nil {
		st.Queue = *q
	}
	return st
}

// readStats reads the queue's figures every StatsInterval until ctx ends.
func (d *Deliverer) readStats(ctx context.Context) {
	tick := time.NewTicker(d.opts.StatsInterval)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, d.opts.RedisTimeout)
		q, err := d.opts.Outbox.OutboxStats(callCtx, 100)
		cancel()
		if err == nil {
			d.queue.Store(&q)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Run looks for due rooms every ScanInterval and delivers each on its own
// goroutine, up to Rooms at once, until ctx ends; then it waits for those
// goroutines, which record what they delivered, and returns nil.
func (d *Deliverer) Run(ctx context.Context) error {
	var rooms sync.WaitGroup
	defer rooms.Wait()
	rooms.Go(func() { d.readStats(ctx) })
	tick := time.NewTicker(d.opts.ScanInterval)
	defer tick.Stop()
	for {
		full := d.scan(ctx, &rooms)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-d.freed:
			if !full {
				// Room to spare already: wait for the tick.
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		}
	}
}

// scan starts a goroutine for each due room not delivered here yet, and
// reports whether every slot is taken.
func (d *Deliverer) scan(ctx context.Context, rooms *sync.WaitGroup) (full bool) {
	d.mu.Lock()
	free := d.opts.Rooms - len(d.active)
	d.mu.Unlock()
	if free <= 0 {
		return true
	}
	callCtx, cancel := context.WithTimeout(ctx, d.opts.RedisTimeout)
	due, err := d.opts.Outbox.DueRooms(callCtx, free)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("webhook rooms not read", "err", err)
		}
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, room := range due {
		if _, ok := d.active[room]; ok || len(d.active) >= d.opts.Rooms {
			continue
		}
		d.active[room] = struct{}{}
		rooms.Go(func() {
			defer d.done(room)
			d.deliverRoom(ctx, room)
		})
	}
	return len(d.active) >= d.opts.Rooms
}

func (d *Deliverer) done(room string) {
	d.mu.Lock()
	delete(d.active, room)
	d.mu.Unlock()
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

// deliverRoom claims room and sends its events in order until none is
// left, one fails, or the lease is lost.
func (d *Deliverer) deliverRoom(ctx context.Context, room string) {
	token := newToken()
	var delivered []string
	// What was delivered is recorded even when ctx ends (at shutdown), so
	// that it is not sent again.
	defer func() {
		if len(delivered) > 0 {
			callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.RedisTimeout)
			defer cancel()
			if _, err := d.opts.Outbox.ClaimOutbox(callCtx, room, token, d.opts.WebhookLease, delivered, 0); err != nil {
				d.log.Warn("webhook deliveries not recorded; they will be sent again", "room", room, "err", err)
			}
		}
	}()
	claim := func(count int) (chat.OutboxBatch, time.Time, bool) {
		start := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, d.opts.RedisTimeout)
		defer cancel()
		batch, err := d.opts.Outbox.ClaimOutbox(callCtx, room, token, d.opts.WebhookLease, delivered, count)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("webhook room not claimed", "room", room, "err", err)
			}
			return batch, start, false
		}
		delivered = delivered[:0]
		return batch, start, batch.Held
	}
	batch, leaseStart, ok := claim(d.opts.Batch)
	for ok && len(batch.Events) > 0 {
		for _, ev := range batch.Events {
			if time.Since(leaseStart) > d.opts.WebhookLease-d.opts.WebhookTimeout-d.opts.RedisTimeout {
				// Renew before a request that could outlast the lease.
				var renewed chat.OutboxBatch
				if renewed, leaseStart, ok = claim(0); !ok || !renewed.Held {
					return
				}
			}
			failure, status := d.send(ctx, ev)
			if failure == "" {
				d.delivered.Add(1)
				delivered = append(delivered, ev.Entry)
				continue
			}
			if ctx.Err() != nil {
				return // shutting down: not the receiver's failure
			}
			d.fail(ctx, room, token, ev, failure, status, delivered)
			delivered = delivered[:0]
			return
		}
		batch, leaseStart, ok = claim(d.opts.Batch)
	}
}

// fail records a failed attempt; the room is released until its retry,
// when any instance may take it.
func (d *Deliverer) fail(ctx context.Context, room, token string, ev chat.OutboxEvent, why string, status int, delivered []string) {
	callCtx, cancel := context.WithTimeout(ctx, d.opts.RedisTimeout)
	defer cancel()
	out, err := d.opts.Outbox.FailOutbox(callCtx, room, token, chat.OutboxFailure{
		Event: ev, Error: why, Status: status, Delivered: delivered, Backoff: d.opts.FirstRetry, MaxDelay: d.opts.MaxRetryDelay,
		Jitter: rand.Float64(), MaxAge: d.opts.WebhookMaxAge,
	})
	switch {
	case err != nil:
		d.failed.Add(1)
		d.log.Warn("webhook failure not recorded; retried after the lease", "room", room, "id", ev.ID, "err", err)
	case out.Dead:
		d.dead.Add(1)
		d.log.Warn("webhook event dead after its maximum age", "room", room, "id", ev.ID, "type", ev.Type,
			"attempts", out.Attempts, "error", why)
	default:
		d.failed.Add(1)
		d.log.Info("webhook delivery failed; retrying", "room", room, "id", ev.ID, "attempts", out.Attempts,
			"retry_in", out.Retry, "error", why)
	}
}

// TimeFormat is the form of the body's timestamp: RFC 3339, UTC,
// milliseconds, as message times have it.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Body is the request body of ev: {"type", "timestamp", "data"}, the same
// bytes on every attempt.
func Body(ev chat.OutboxEvent) []byte {
	b := make([]byte, 0, 64+len(ev.Type)+len(ev.Data))
	b = append(b, `{"type":"`...)
	b = append(b, ev.Type...)
	b = append(b, `","timestamp":"`...)
	b = ev.Time.UTC().AppendFormat(b, TimeFormat)
	b = append(b, `","data":`...)
	b = append(b, ev.Data...)
	return append(b, '}')
}

// send posts ev to the receiver and returns "" on a 2xx, else why not,
// with the receiver's status if it answered.
func (d *Deliverer) send(ctx context.Context, ev chat.OutboxEvent) (string, int) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.WebhookTimeout)
	defer cancel()
	body := Body(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.opts.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return "request: " + err.Error(), 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "roomcast-webhooks")
	d.opts.WebhookSecret.SetHeaders(req.Header, ev.ID, time.Now(), body)
	resp, err := d.client.Do(req)
	if err != nil {
		// Not the URL: it may carry a credential.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Sprintf("no answer within %s", d.opts.WebhookTimeout), 0
		}
		return "POST: " + err.Error(), 0
	}
	// Read a little so that the connection is kept alive.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "status " + resp.Status, resp.StatusCode
	}
	return "", resp.StatusCode
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}
