// Package app wires roomcast together: the message store, the broker, the
// stream engine and the HTTP API on one Redis client. main serves what New
// returns, and the test harnesses use the very same wiring, so tests
// exercise what ships.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/cursor"
	"roomcast/api/metrics"
	"roomcast/api/sse"
	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/control"
	"roomcast/broker/presence"
	"roomcast/broker/stream"
	"roomcast/broker/webhook"
	"roomcast/redisscripts"
)

// Options are the settings the wiring needs; main fills them from the
// environment, each field from the variable of the same name (KeyPrefix
// from KEY_PREFIX, and so on), and hands each on under that name. Zero
// durations and sizes are not defaulted: pass real values.
type Options struct {
	KeyPrefix             string
	HistoryMax            int
	IdempotencyTTL        time.Duration
	RoomTTL               time.Duration
	RedisTimeout          time.Duration // bound on each Redis call of the broker and the presence tracker
	ClientBuffer          int           // messages queued per stream (and per broker.Subscription) before it is dropped as slow
	DeliveryCheckInterval time.Duration
	MaxMessageBytes       int
	MaxMetadataBytes      int           // largest metadata of a message, as compact JSON
	EditWindow            time.Duration // how long authors may change their messages; 0: for ever
	HeartbeatInterval     time.Duration
	SSERetry              time.Duration // reconnection delay advised to streams
	StreamWriteTimeout    time.Duration
	StreamFlushDelay      time.Duration // how long a stream holds a write to join more frames into it
	BrokerMode            string        // "sharded": SPUBLISH, and SSUBSCRIBE per room on its shard; else one PSUBSCRIBE
	PresenceGrace         time.Duration // a reconnection within it is neither a leave nor a join
	PresenceInterval      time.Duration // how often each room with local listeners is reported to Redis
	PresenceMaxUsers      int           // users a presence answer lists
	TypingInterval        time.Duration // shortest time between typing events of a user in a room; 0: the API's default
	StreamMaxRooms        int           // rooms one multi-room stream may watch; 0: the API's default
	CursorKey             []byte        // signs the cursors of multi-room streams (CURSOR_KEY); empty: checksummed only
	Webhooks              Webhooks      // events out to the backend; zero: off
	PublishHook           PublishHook   // the backend's say before a message is stored; zero: off
	Security              api.Security
	Spec                  []byte // openapi.yaml, served as is
	Logger                *slog.Logger

	// RevocationTTL: how long a token revocation without expires_at is
	// kept; 0: the API's default.
	RevocationTTL time.Duration

	// ReadReceiptsMaxWatchers: present users up to which a read marker's
	// move is a receipt for the room's members; 0: none.
	ReadReceiptsMaxWatchers int
}

// App is roomcast's HTTP handler and the parts behind it. Serve Handler
// while Run runs.
type App struct {
	Handler  http.Handler
	Hub      *broker.Hub
	Streams  *stream.Engine
	Store    *redisscripts.Store
	Presence *presence.Tracker
	Metrics  *metrics.Metrics
	Webhooks *webhook.Deliverer // nil without a WebhookURL
	Control  *control.Watcher   // the bans and revocations in force

	rdb redis.UniversalClient
	log *slog.Logger
}

// The Redis store is what api and the presence tracker talk to.
var (
	_ api.EventPublisher = (*redisscripts.Store)(nil)
	_ presence.Store     = (*redisscripts.Store)(nil)
)

// New wires the store, the broker, the stream engine and the API on rdb,
// and adds the metrics hook to rdb. The hub, the engine and the API share
// one sse.Frames, the wire format of streams. Nothing talks to Redis until
// Run.
func New(rdb redis.UniversalClient, opts Options) *App {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := metrics.New()
	rdb.AddHook(m.RedisHook())
	keys := redisscripts.NewKeys(opts.KeyPrefix)
	if _, cluster := rdb.(*redis.ClusterClient); cluster {
		keys = keys.PerSlotBuckets()
	}
	// BROKER_MODE is two switches below: how the store publishes
	// (StoreOptions.Sharded) and how the hub subscribes (a shard router).
	sharded := opts.BrokerMode == "sharded"
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{
		HistoryMax: opts.HistoryMax, IdempotencyTTL: opts.IdempotencyTTL, RoomTTL: opts.RoomTTL,
		Sharded: sharded, ReadReceiptsMaxWatchers: opts.ReadReceiptsMaxWatchers, WebhookEvents: opts.Webhooks.events(),
	})
	var shards broker.ShardRouter
	if sharded {
		shards = broker.NewShardRouter(rdb)
	}
	frames := sse.Frames{SSERetry: opts.SSERetry}
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, Encoder: frames, ClientBuffer: opts.ClientBuffer,
		DeliveryCheckInterval: opts.DeliveryCheckInterval, RedisTimeout: opts.RedisTimeout, Logger: log,
		Shards: shards,
	})
	m.ObserveHub(hub.Stats)
	engine := stream.New(stream.Options{
		Rooms: hub, Frames: frames, HeartbeatInterval: opts.HeartbeatInterval,
		StreamWriteTimeout: opts.StreamWriteTimeout, StreamFlushDelay: opts.StreamFlushDelay,
		ClientBuffer: opts.ClientBuffer, Metrics: m, Logger: log,
	})
	tracker := presence.New(presence.Options{Store: store, PresenceGrace: opts.PresenceGrace,
		PresenceInterval: opts.PresenceInterval, PresenceMaxUsers: opts.PresenceMaxUsers,
		RedisTimeout: opts.RedisTimeout, Logger: log})
	a := &App{Hub: hub, Streams: engine, Store: store, Presence: tracker, Metrics: m, rdb: rdb, log: log}
	a.Webhooks = opts.Webhooks.deliverer(store, rdb, opts.RedisTimeout, m, log)

	// The watcher tells the API of each change, and the API is built
	// after it: handler is set before Run starts the watcher.
	var handler *api.Handler
	a.Control = control.New(rdb, control.Options{
		Channel: keys.ControlChannel(), Store: store, RedisTimeout: opts.RedisTimeout,
		CheckInterval: opts.DeliveryCheckInterval, Logger: log,
		OnChange: func(c chat.Control) { handler.Enforce(c) },
	})

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	handler = api.New(api.Options{
		Store: store, Streams: engine, Frames: frames, Spec: opts.Spec, Ready: a.ready,
		MaxMessageBytes: opts.MaxMessageBytes, MaxMetadataBytes: opts.MaxMetadataBytes, EditWindow: opts.EditWindow, Logger: log, Metrics: m, Security: opts.Security,
		Presence: tracker, Events: store, TypingInterval: opts.TypingInterval, StreamMaxRooms: opts.StreamMaxRooms,
		Cursors: cursor.NewCodec(opts.CursorKey), Reads: store,
		Bans: store, Rooms: store, Control: a.Control, RevocationTTL: opts.RevocationTTL, Webhooks: store,
		PublishHook: opts.PublishHook.client(), PublishHookAcceptOnError: opts.PublishHook.AcceptOnError,
	})
	handler.Register(e)
	a.Handler = e
	return a
}

// Run runs the broker and the presence tracker until ctx ends; the broker
// keeps reconnecting to Redis with backoff, also when Redis does not answer
// at start.
func (a *App) Run(ctx context.Context) error {
	trackerDone := make(chan struct{})
	go func() {
		defer close(trackerDone)
		_ = a.Presence.Run(ctx)
	}()
	defer func() { <-trackerDone }()
	controlDone := make(chan struct{})
	go func() {
		defer close(controlDone)
		_ = a.Control.Run(ctx)
	}()
	defer func() { <-controlDone }()
	if a.Webhooks != nil {
		webhooksDone := make(chan struct{})
		go func() {
			defer close(webhooksDone)
			_ = a.Webhooks.Run(ctx)
		}()
		defer func() { <-webhooksDone }()
	}
	return a.Hub.Run(ctx)
}

// WaitStarted blocks until the broker has subscribed to Redis for the first
// time, or ctx ends. Until then streams are refused (broker.ErrNotStarted)
// with an advice to retry.
//
// It also waits for the control watcher's first read of the bans and
// revocations, so that none is missed by the first requests.
func (a *App) WaitStarted(ctx context.Context) error {
	if err := a.Hub.WaitStarted(ctx); err != nil {
		return err
	}
	return a.Control.WaitStarted(ctx)
}

// ready is nil while Redis answers, live delivery works and bans and
// revocations reach this instance.
func (a *App) ready(ctx context.Context) error {
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	if err := a.Hub.Ready(); err != nil {
		return err
	}
	return a.Control.Ready()
}

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
