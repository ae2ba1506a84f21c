// Command roomcast is a real-time chat-room server: messages posted to a
// room are stored in Redis and streamed to every client watching the room.
package main

import (
	"context"
	"crypto/tls"
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

	"github.com/redis/go-redis/v9"

	"roomcast/api/app"
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
		if args[0] == "-probe" && len(args) == 2 {
			return probe(ctx, args[1])
		}
		return configError{fmt.Errorf("unexpected argument %q; configuration comes from environment variables, see -h", args[0])}
	}
	cfg, err := parseConfig(environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	for _, w := range ineffectiveSettings(cfg, environ) {
		log.Warn(w)
	}
	redis.SetLogger(redisLog{log})
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	tlsConfig, err := serverTLS(cfg, log)
	if err != nil {
		return err
	}

	rdb, closeRedis, answered, err := connectRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	sec, err := securityOptions(ctx, cfg, rdb, log)
	if err != nil {
		return err
	}
	a := app.New(rdb, app.Options{
		KeyPrefix: cfg.KeyPrefix, HistoryMax: cfg.HistoryMax, IdempotencyTTL: cfg.IdempotencyTTL, RoomTTL: cfg.RoomTTL,
		RedisTimeout: cfg.RedisTimeout, ClientBuffer: cfg.ClientBuffer, DeliveryCheckInterval: cfg.DeliveryCheckInterval,
		MaxMessageBytes: cfg.MaxMessageBytes, MaxMetadataBytes: cfg.MaxMetadataBytes, EditWindow: cfg.EditWindow, HeartbeatInterval: cfg.HeartbeatInterval, SSERetry: cfg.SSERetry,
		StreamWriteTimeout: cfg.StreamWriteTimeout, StreamFlushDelay: cfg.StreamFlushDelay,
		BrokerMode: cfg.BrokerMode, Security: sec, Spec: spec, Logger: log,
		// Presence is reported once per stream heartbeat: it has no
		// setting of its own.
		PresenceGrace: cfg.PresenceGrace, PresenceInterval: cfg.HeartbeatInterval, PresenceMaxUsers: cfg.PresenceMaxUsers,
		StreamMaxRooms: cfg.StreamMaxRooms, CursorKey: []byte(cfg.CursorKey),
		ReadReceiptsMaxWatchers: cfg.ReadReceiptsMaxWatchers,
		RevocationTTL:           cfg.RevocationTTL,
		Webhooks:                webhookOptions(cfg),
		PublishHook:             publishHookOptions(cfg),
	})
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan error, 1)
	go func() { hubDone <- a.Run(hubCtx) }()
	var waiting sync.WaitGroup
	stopBroker := sync.OnceFunc(func() { stopHub(); <-hubDone; waiting.Wait() })
	defer stopBroker()
	if answered {
		startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := a.WaitStarted(startCtx); err != nil {
			return err
		}
	} else {
		// Serve anyway (/healthz 200, /readyz and posts 503, streams advised
		// to retry), so that roomcast does not lose a race with Redis at
		// start; the broker connects on its own once Redis answers.
		waiting.Go(func() { _ = app.AwaitRedis(hubCtx, rdb, 3*cfg.RedisTimeout, log) })
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
		// An HTTP/2 stream's write deadline only queues a RST_STREAM, which
		// waits behind a blocked connection write with its handler: close
		// a connection that takes no bytes, as over HTTP/1.1.
		HTTP2: &http.HTTP2Config{WriteByteTimeout: cfg.StreamWriteTimeout},
	}
	serveDone := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			serveDone <- srv.ServeTLS(ln, "", "")
		} else {
			serveDone <- srv.Serve(ln)
		}
	}()
	log.Info("roomcast listening", "addr", ln.Addr().String(), "tls", tlsConfig != nil)
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
// Redis when it is empty, and reports whether it answers. A Redis that
// answers with an error (a wrong password, say) is an error; one that does
// not answer yet is not.
func connectRedis(ctx context.Context, cfg config, log *slog.Logger) (_ redis.UniversalClient, _ func(), answered bool, _ error) {
	url, stopEmbedded := cfg.RedisURL, func() {}
	if url == "" {
		addr, stop, err := startEmbeddedRedis()
		if err != nil {
			return nil, nil, false, err
		}
		log.Warn("REDIS_URL is not set: using an embedded in-memory Redis; messages are lost on exit and instances do not share them (development only)")
		url, stopEmbedded = "redis://"+addr, stop
	}
	var rdb redis.UniversalClient
	if cfg.RedisCluster {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, nil, false, redisURLError(err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = cfg.redisTimeouts()
		opts.MaxRetries = -1
		rdb = redis.NewClusterClient(opts)
	} else {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, nil, false, redisURLError(err)
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
	err := rdb.Ping(pingCtx).Err()
	if redisErr := redis.Error(nil); errors.As(err, &redisErr) {
		closeAll()
		return nil, nil, false, fmt.Errorf("redis at %s refuses roomcast: %w", redactURL(url), err)
	}
	if err != nil {
		log.Warn("redis does not answer; serving anyway and connecting with backoff until it does",
			"redis", redactURL(url), "err", err)
		return rdb, closeAll, false, nil
	}
	return rdb, closeAll, true, nil
}

// redisURLError is the configError of a REDIS_URL that does not parse. It
// leaves out the URL, which may hold a password.
func redisURLError(err error) error {
	var urlErr *neturl.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return configError{fmt.Errorf("REDIS_URL: %s", strings.TrimPrefix(err.Error(), "redis: "))}
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

// probe GETs url and succeeds on a 200: a container health check for an
// image without a shell or curl (`roomcast -probe http://127.0.0.1:8080/readyz`,
// or https:// when TLS_CERT_FILE is set).
func probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return configError{fmt.Errorf("-probe: %w", err)}
	}
	client := http.DefaultClient
	if strings.HasPrefix(url, "https:") {
		// It checks that this very process answers, at an address such as
		// 127.0.0.1 that its certificate does not name; it sends nothing
		// secret and trusts nothing it reads.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		client = &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: %s answered %s", url, resp.Status)
	}
	return nil
}
