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
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/caarlos0/env/v11"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/metrics"
	"roomcast/broker"
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

	rdb, closeRedis, err := connectRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	m := metrics.New()
	rdb.AddHook(m.RedisHook())

	keys := redisscripts.NewKeys(cfg.KeyPrefix)
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{
		HistoryMax: cfg.HistoryMax, IdempotencyTTL: cfg.IdempotencyTTL,
	})
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, Encode: api.EncodeMessage, Buffer: cfg.ClientBuffer,
		CheckInterval: cfg.DeliveryCheckInterval, Timeout: cfg.RedisTimeout, Logger: log,
	})
	m.ObserveHub(hub.Stats)
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(hubCtx) }()
	stopBroker := sync.OnceFunc(func() { stopHub(); <-hubDone })
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

// config is every setting; each comes from the environment variable named
// in its env tag, and `roomcast -h` prints them with their help tags.
type config struct {
	Addr                  string        `env:"ADDR" envDefault:":8080" help:"address to listen on"`
	RedisURL              string        `env:"REDIS_URL" help:"redis:// or rediss:// URL; empty starts an embedded in-memory Redis (development only)"`
	RedisCluster          bool          `env:"REDIS_CLUSTER" envDefault:"false" help:"treat REDIS_URL as a Redis Cluster seed (extra nodes as ?addr=host:port)"`
	RedisTimeout          time.Duration `env:"REDIS_TIMEOUT" envDefault:"1s" help:"bound on each Redis call; a post fails with 503 after it"`
	KeyPrefix             string        `env:"KEY_PREFIX" envDefault:"roomcast:" help:"prefix of every Redis key and channel"`
	HistoryMax            int           `env:"HISTORY_MAX" envDefault:"1000" help:"messages kept per room"`
	MaxMessageBytes       int           `env:"MAX_MESSAGE_BYTES" envDefault:"4096" help:"largest message text in bytes"`
	IdempotencyTTL        time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h" help:"how long an Idempotency-Key is remembered"`
	HeartbeatInterval     time.Duration `env:"HEARTBEAT_INTERVAL" envDefault:"15s" help:"interval of keep-alive comments on streams"`
	ClientBuffer          int           `env:"CLIENT_BUFFER" envDefault:"256" help:"messages queued per stream before a slow client is disconnected"`
	SSERetry              time.Duration `env:"SSE_RETRY" envDefault:"2s" help:"reconnection delay advised to stream clients"`
	StreamWriteTimeout    time.Duration `env:"STREAM_WRITE_TIMEOUT" envDefault:"10s" help:"a stream write blocked longer than this ends the stream"`
	DeliveryCheckInterval time.Duration `env:"DELIVERY_CHECK_INTERVAL" envDefault:"5s" help:"how often live delivery is probed and room positions compared with Redis"`
	ShutdownTimeout       time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s" help:"longest wait for requests in flight at shutdown"`
	LogLevel              slog.Level    `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat             string        `env:"LOG_FORMAT" envDefault:"text" help:"text or json"`
	JWTSecret             string        `env:"JWT_SECRET" help:"HMAC key (at least 32 bytes) verifying HS256/384/512 tokens; any JWT key turns authentication on"`
	JWTPublicKeyFile      string        `env:"JWT_PUBLIC_KEY_FILE" help:"PEM file of the RSA, ECDSA or Ed25519 public key (or certificate) verifying tokens"`
	JWTJWKSURL            string        `env:"JWT_JWKS_URL" help:"JWKS of the keys verifying tokens: file:///path, read at start, or an http(s) URL, refreshed hourly"`
	JWTIssuer             string        `env:"JWT_ISSUER" help:"iss that tokens must have; empty: not checked"`
	JWTAudience           string        `env:"JWT_AUDIENCE" help:"aud that tokens must include; empty: not checked"`
	JWTLeeway             time.Duration `env:"JWT_LEEWAY" envDefault:"30s" help:"clock skew allowed on exp, nbf and iat"`
	JWTCookie             string        `env:"JWT_COOKIE" envDefault:"roomcast_token" help:"cookie that may carry a stream's token, as EventSource cannot send headers"`
	JWTDefaultRooms       string        `env:"JWT_DEFAULT_ROOMS" envDefault:"read:*,write:*" help:"permissions of tokens without a rooms claim: read:PATTERN and write:PATTERN, comma-separated, or none"`
	PostRate              float64       `env:"POST_RATE" envDefault:"5" help:"posts a second per user (per client IP in open mode), shared by instances via Redis; 0 turns the limit off"`
	PostBurst             int           `env:"POST_BURST" envDefault:"20" help:"posts a client may send at once before POST_RATE applies"`
	MaxStreamsPerClient   int           `env:"MAX_STREAMS_PER_CLIENT" envDefault:"16" help:"open streams per user (per client IP in open mode), 429 beyond; 0: no limit"`
	MaxStreams            int           `env:"MAX_STREAMS" envDefault:"10000" help:"open streams per process, 503 beyond; 0: no limit"`
	TrustedProxies        []string      `env:"TRUSTED_PROXIES" envSeparator:"," help:"comma-separated CIDRs of proxies whose X-Forwarded-For names the client"`
	CORSOrigins           []string      `env:"CORS_ORIGINS" envSeparator:"," help:"comma-separated origins (https://chat.example) whose pages may call the API, with credentials"`
	BodyReadTimeout       time.Duration `env:"BODY_READ_TIMEOUT" envDefault:"10s" help:"longest wait for a request body (against slow clients); streams are not affected"`
}

func (c config) redisTimeouts() (dial, read, write, pool time.Duration) {
	return c.RedisTimeout, c.RedisTimeout, c.RedisTimeout, c.RedisTimeout
}

// configError is a bad setting; roomcast exits with status 2 on it.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

func parseConfig(environ []string) (config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	cfg, err := env.ParseAsWithOptions[config](env.Options{Environment: vars})
	if err != nil {
		var agg env.AggregateError
		if errors.As(err, &agg) && len(agg.Errors) > 0 {
			err = agg.Errors[0]
		}
		var perr env.ParseError
		if errors.As(err, &perr) {
			err = fmt.Errorf("%s: invalid value %q: %w", envName(perr.Name), vars[envName(perr.Name)], perr.Err)
		}
		return cfg, configError{err}
	}
	checks := []struct {
		ok   bool
		name string
		want string
	}{
		{validAddr(cfg.Addr), "ADDR", "host:port, e.g. :8080"},
		{cfg.HistoryMax >= 1 && cfg.HistoryMax <= 1_000_000, "HISTORY_MAX", "1 to 1000000"},
		{cfg.MaxMessageBytes >= 1 && cfg.MaxMessageBytes <= 1<<20, "MAX_MESSAGE_BYTES", "1 to 1048576"},
		{cfg.ClientBuffer >= 1 && cfg.ClientBuffer <= 100_000, "CLIENT_BUFFER", "1 to 100000"},
		{cfg.RedisTimeout > 0, "REDIS_TIMEOUT", "a positive duration"},
		{cfg.IdempotencyTTL >= time.Second, "IDEMPOTENCY_TTL", "at least 1s"},
		{cfg.HeartbeatInterval >= time.Second, "HEARTBEAT_INTERVAL", "at least 1s"},
		{cfg.SSERetry >= time.Millisecond, "SSE_RETRY", "at least 1ms"},
		{cfg.StreamWriteTimeout > 0, "STREAM_WRITE_TIMEOUT", "a positive duration"},
		{cfg.DeliveryCheckInterval >= 10*time.Millisecond, "DELIVERY_CHECK_INTERVAL", "at least 10ms"},
		{cfg.ShutdownTimeout > 0, "SHUTDOWN_TIMEOUT", "a positive duration"},
		{cfg.LogFormat == "text" || cfg.LogFormat == "json", "LOG_FORMAT", "text or json"},
		{cfg.KeyPrefix != "" && !strings.ContainsAny(cfg.KeyPrefix, "{}"), "KEY_PREFIX", "non-empty, without { or }"},
		{cfg.JWTLeeway >= 0 && cfg.JWTLeeway <= 5*time.Minute, "JWT_LEEWAY", "0 to 5m"},
		{cfg.PostRate >= 0 && cfg.PostRate <= 1e6, "POST_RATE", "0 to 1000000"},
		{cfg.PostBurst >= 1 && cfg.PostBurst <= 1e6, "POST_BURST", "1 to 1000000"},
		{cfg.MaxStreamsPerClient >= 0, "MAX_STREAMS_PER_CLIENT", "0 or more"},
		{cfg.MaxStreams >= 0, "MAX_STREAMS", "0 or more"},
		{cfg.BodyReadTimeout > 0, "BODY_READ_TIMEOUT", "a positive duration"},
	}
	for _, c := range checks {
		if !c.ok {
			return cfg, configError{fmt.Errorf("%s: invalid value %q: want %s", c.name, vars[c.name], c.want)}
		}
	}
	return cfg, nil
}

// validAddr reports whether addr has the host:port form net.Listen takes.
func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	return err == nil
}

// envName is the variable of a config field.
func envName(field string) string {
	f, _ := reflect.TypeFor[config]().FieldByName(field)
	return f.Tag.Get("env")
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: roomcast\n\nroomcast is configured by environment variables:")
	t := reflect.TypeFor[config]()
	for i := range t.NumField() {
		f := t.Field(i)
		def := f.Tag.Get("envDefault")
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  %-24s %s (default %s)\n", f.Tag.Get("env"), f.Tag.Get("help"), def)
	}
}
