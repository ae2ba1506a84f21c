// Command roomcast is a real-time chat-room server: messages posted to a
// room are stored in Redis and streamed to every client watching the room.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/metrics"
	"roomcast/broker"
	"roomcast/presence"
	"roomcast/redisscripts"
)

//go:embed openapi.yaml
var spec []byte

func main() { os.Exit(runMain(os.Args[1:])) }

// runMain runs roomcast until SIGINT or SIGTERM and returns the process's
// exit status: 0 after a clean shutdown, 2 for bad configuration, else 1.
func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args, os.Environ(), os.Stdout, nil)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "roomcast:", err)
	if errors.As(err, new(configError)) {
		return 2
	}
	return 1
}

// run starts roomcast and serves until ctx ends. listening, if not nil, is
// called with the address once requests are accepted.
func run(ctx context.Context, args, environ []string, stdout io.Writer, listening func(addr string)) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
			printUsage(stdout)
			return nil
		}
		return configError{fmt.Errorf("unexpected argument %q; configuration comes from environment variables, see -h", args[0])}
	}
	cfg, err := parseConfig(environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	redis.SetLogger(redisLog{log})

	rdb, closeRedis, err := connectRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	m := metrics.New()
	rdb.AddHook(m.RedisHook())

	keys := redisscripts.NewKeys(cfg.KeyPrefix)
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{
		HistoryMax: cfg.HistoryMax, IdempotencyTTL: cfg.IdempotencyTTL, RoomTTL: cfg.RoomTTL,
	})
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, Encode: api.EncodeMessage, Buffer: cfg.ClientBuffer,
		CheckInterval: cfg.DeliveryCheckInterval, Timeout: cfg.RedisTimeout, Logger: log,
	})
	m.ObserveHub(hub.Stats)
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(hubCtx) }()
	tracker := presence.New(presence.Options{Store: store, Grace: cfg.PresenceGrace, Interval: cfg.HeartbeatInterval,
		MaxUsers: cfg.PresenceMaxUsers, Timeout: cfg.RedisTimeout, Logger: log})
	trackerDone := make(chan error, 1)
	go func() { trackerDone <- tracker.Run(hubCtx) }()
	stopBroker := sync.OnceFunc(func() { stopHub(); <-hubDone; <-trackerDone })
	defer stopBroker()
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := hub.WaitStarted(startCtx); err != nil {
		return err
	}

	sec, err := securityOptions(ctx, cfg, rdb, log)
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	api.New(api.Options{
		Store: store, Rooms: hub, Spec: spec,
		Ready: func(ctx context.Context) error {
			if err := rdb.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis ping: %w", err)
			}
			return hub.Ready()
		},
		MaxMessageBytes: cfg.MaxMessageBytes, Heartbeat: cfg.HeartbeatInterval, Retry: cfg.SSERetry,
		WriteTimeout: cfg.StreamWriteTimeout, Logger: log, Metrics: m, Security: sec,
		Presence: tracker, Events: store, StreamMaxRooms: cfg.StreamMaxRooms,
	}).Register(e)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	log.Info("roomcast listening", "addr", ln.Addr().String())
	if listening != nil {
		listening(ln.Addr().String())
	}

	select {
	case err := <-serveDone:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Stopping the hub first ends every stream, which Shutdown would
	// otherwise wait for; posts in flight still complete.
	stopBroker()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// connectRedis connects to cfg.RedisURL, or starts an embedded in-process
// Redis when it is empty, and checks that it answers.
func connectRedis(ctx context.Context, cfg config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	url, stopEmbedded := cfg.RedisURL, func() {}
	if url == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		log.Warn("REDIS_URL is not set: using an embedded in-memory Redis; messages are lost on exit and instances do not share them (development only)")
		url, stopEmbedded = "redis://"+mr.Addr(), mr.Close
	}
	var rdb redis.UniversalClient
	if cfg.RedisCluster {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, nil, redisURLError(err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = cfg.redisTimeouts()
		opts.MaxRetries = -1
		rdb = redis.NewClusterClient(opts)
	} else {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, nil, redisURLError(err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = cfg.redisTimeouts()
		// A post whose reply was lost may have been stored: never resend it
		// on our own. Clients retry, with an Idempotency-Key to be exact.
		opts.MaxRetries = -1
		rdb = redis.NewClient(opts)
	}
	closeAll := func() { rdb.Close(); stopEmbedded() }
	pingCtx, cancel := context.WithTimeout(ctx, 3*cfg.RedisTimeout)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("redis at %s does not answer: %w", redactURL(url), err)
	}
	return rdb, closeAll, nil
}

// redisURLError is the configError of a REDIS_URL that does not parse. It
// leaves out the URL, which may hold a password.
func redisURLError(err error) error {
	var urlErr *neturl.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return configError{fmt.Errorf("REDIS_URL: %w", err)}
}

// redactURL hides the password of a Redis URL for messages.
func redactURL(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
		return scheme + "://***@" + rest[at+1:]
	}
	return url
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redisLog sends go-redis's own messages (failed dials, mostly) to the
// structured log instead of a bare line on stderr.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
