// Package app wires roomcast together: the message store, the broker and
// the HTTP API on one Redis client. main serves what New returns, and the
// test harnesses use the very same wiring, so tests exercise what ships.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/cursor"
	"roomcast/api/metrics"
	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/presence"
	"roomcast/redisscripts"
)

// Options are the settings the wiring needs; main fills them from the
// environment. Zero durations and sizes are not defaulted: pass real values.
type Options struct {
	KeyPrefix             string
	HistoryMax            int
	IdempotencyTTL        time.Duration
	RoomTTL               time.Duration
	RedisTimeout          time.Duration // bound on each Redis call of the broker
	ClientBuffer          int
	DeliveryCheckInterval time.Duration
	MaxMessageBytes       int
	Heartbeat             time.Duration
	Retry                 time.Duration // reconnection delay advised to streams
	StreamWriteTimeout    time.Duration
	StreamFlushDelay      time.Duration // how long a stream holds a write to join more frames into it
	Sharded               bool          // BROKER_MODE=sharded: SPUBLISH, and SSUBSCRIBE per room on each shard
	PresenceGrace         time.Duration // a reconnection within it is neither a leave nor a join
	PresenceInterval      time.Duration // how often each room with local listeners is reported to Redis
	PresenceMaxUsers      int           // users a presence answer lists
	TypingInterval        time.Duration // shortest time between typing events of a user in a room; 0: the API's default
	StreamMaxRooms        int           // rooms one multi-room stream may watch; 0: the API's default
	CursorKey             []byte        // signs the cursors of multi-room streams (CURSOR_KEY); empty: checksummed only
	Security              api.Security
	Spec                  []byte // openapi.yaml, served as is
	Logger                *slog.Logger
}

// App is roomcast's HTTP handler and the parts behind it. Serve Handler
// while Run runs.
type App struct {
	Handler  http.Handler
	Hub      *broker.Hub
	Store    *redisscripts.Store
	Presence *presence.Tracker
	Metrics  *metrics.Metrics

	rdb     redis.UniversalClient
	log     *slog.Logger
	started atomic.Bool // the hub has subscribed at least once
}

// The Redis store is what api and the presence tracker talk to.
var (
	_ api.EventPublisher = (*redisscripts.Store)(nil)
	_ presence.Store     = (*redisscripts.Store)(nil)
)

// New wires the store, the broker and the API on rdb, and adds the metrics
// hook to rdb. Nothing talks to Redis until Run.
func New(rdb redis.UniversalClient, opts Options) *App {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := metrics.New()
	rdb.AddHook(m.RedisHook())
	keys := redisscripts.NewKeys(opts.KeyPrefix)
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{
		HistoryMax: opts.HistoryMax, IdempotencyTTL: opts.IdempotencyTTL, RoomTTL: opts.RoomTTL,
		Sharded: opts.Sharded,
	})
	var shards broker.ShardRouter
	if opts.Sharded {
		shards = broker.NewShardRouter(rdb)
	}
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, Encode: api.EncodeMessage, Buffer: opts.ClientBuffer,
		CheckInterval: opts.DeliveryCheckInterval, Timeout: opts.RedisTimeout, Logger: log,
		Shards: shards,
	})
	m.ObserveHub(hub.Stats)
	tracker := presence.New(presence.Options{Store: store, Grace: opts.PresenceGrace, Interval: opts.PresenceInterval,
		MaxUsers: opts.PresenceMaxUsers, Timeout: opts.RedisTimeout, Logger: log})
	a := &App{Hub: hub, Store: store, Presence: tracker, Metrics: m, rdb: rdb, log: log}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	api.New(api.Options{
		Store: store, Rooms: startedRooms{a}, Spec: opts.Spec, Ready: a.ready,
		MaxMessageBytes: opts.MaxMessageBytes, Heartbeat: opts.Heartbeat, Retry: opts.Retry,
		WriteTimeout: opts.StreamWriteTimeout, StreamQueue: opts.ClientBuffer, FlushDelay: opts.StreamFlushDelay,
		Logger: log, Metrics: m, Security: opts.Security,
		Presence: tracker, Events: store, TypingInterval: opts.TypingInterval, StreamMaxRooms: opts.StreamMaxRooms,
		Cursors: cursor.NewCodec(opts.CursorKey),
	}).Register(e)
	a.Handler = e
	return a
}

// Run runs the broker and the presence tracker until ctx ends; the broker
// keeps reconnecting to Redis with backoff, also when Redis does not answer
// at start.
func (a *App) Run(ctx context.Context) error {
	go func() {
		_ = a.WaitStarted(ctx)
	}()
	trackerDone := make(chan struct{})
	go func() {
		defer close(trackerDone)
		_ = a.Presence.Run(ctx)
	}()
	defer func() { <-trackerDone }()
	return a.Hub.Run(ctx)
}

// WaitStarted blocks until the broker has subscribed to Redis for the first
// time, or ctx ends.
func (a *App) WaitStarted(ctx context.Context) error {
	if err := a.Hub.WaitStarted(ctx); err != nil {
		return err
	}
	a.started.Store(true)
	return nil
}

// ready is nil while Redis answers and live delivery works.
func (a *App) ready(ctx context.Context) error {
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return a.Hub.Ready()
}

// errNotStarted refuses streams until the broker's first subscription: a
// stream opened before it could miss messages posted in between.
var errNotStarted = fmt.Errorf("%w: broker not subscribed yet", chat.ErrUnavailable)

// startedRooms serves streams through the hub once it has started.
type startedRooms struct{ a *App }

func (r startedRooms) Listen(ctx context.Context, room string, l broker.Listener) (chat.ID, error) {
	if !r.a.started.Load() {
		return chat.ID{}, errNotStarted
	}
	return r.a.Hub.Listen(ctx, room, l)
}

func (r startedRooms) Unlisten(room string, l broker.Listener) bool { return r.a.Hub.Unlisten(room, l) }

func (r startedRooms) Since(ctx context.Context, room string, from chat.ID) (broker.Page, error) {
	return r.a.Hub.Since(ctx, room, from)
}

var _ api.RoomSubscriber = startedRooms{}

// AwaitRedis pings rdb with backoff until it answers or ctx ends, logging
// each failure; it returns nil once Redis answered.
func AwaitRedis(ctx context.Context, rdb redis.UniversalClient, timeout time.Duration, log *slog.Logger) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pingCtx, cancel := context.WithTimeout(ctx, timeout)
		err := rdb.Ping(pingCtx).Err()
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("redis answers", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("redis does not answer; retrying", "err", err, "attempt", attempt, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}
