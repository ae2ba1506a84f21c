package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts"
)

// config is every setting; each comes from the environment variable named
// in its env tag, and `roomcast -h` prints them with their help tags.
type config struct {
	Addr                  string        `env:"ADDR" envDefault:":8080" help:"address to listen on"`
	TLSCertFile           string        `env:"TLS_CERT_FILE" help:"PEM certificate (chain) to serve HTTPS with HTTP/2 on ADDR; set with TLS_KEY_FILE, or neither for plain HTTP"`
	TLSKeyFile            string        `env:"TLS_KEY_FILE" help:"PEM private key of TLS_CERT_FILE"`
	RedisURL              string        `env:"REDIS_URL" help:"redis:// or rediss:// URL; empty starts an embedded in-memory Redis (development only)"`
	RedisCluster          bool          `env:"REDIS_CLUSTER" envDefault:"false" help:"treat REDIS_URL as a Redis Cluster seed (extra nodes as ?addr=host:port)"`
	BrokerMode            string        `env:"BROKER_MODE" envDefault:"pattern" help:"pattern: one PSUBSCRIBE per instance receives every room; sharded: SPUBLISH/SSUBSCRIBE per room on its shard (Redis 7, REDIS_URL required)"`
	RedisTimeout          time.Duration `env:"REDIS_TIMEOUT" envDefault:"1s" help:"bound on each Redis call; a post fails with 503 after it"`
	KeyPrefix             string        `env:"KEY_PREFIX" envDefault:"roomcast:" help:"prefix of every Redis key and channel"`
	HistoryMax            int           `env:"HISTORY_MAX" envDefault:"1000" help:"messages kept per room"`
	MaxMessageBytes       int           `env:"MAX_MESSAGE_BYTES" envDefault:"4096" help:"largest message text in bytes"`
	MaxMetadataBytes      int           `env:"MAX_METADATA_BYTES" envDefault:"2048" help:"largest metadata object of a message in bytes, as compact JSON"`
	EditWindow            time.Duration `env:"EDIT_WINDOW" envDefault:"0s" help:"how long authors may edit and delete their messages (moderators always may); 0s: for ever"`
	IdempotencyTTL        time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h" help:"how long an Idempotency-Key is remembered"`
	RoomTTL               time.Duration `env:"ROOM_TTL" envDefault:"0s" help:"how long a room and its history are kept after its last post; 0s keeps rooms for ever"`
	HeartbeatInterval     time.Duration `env:"HEARTBEAT_INTERVAL" envDefault:"15s" help:"interval of keep-alive comments on streams"`
	ClientBuffer          int           `env:"CLIENT_BUFFER" envDefault:"256" help:"messages queued per stream before a slow client is disconnected"`
	SSERetry              time.Duration `env:"SSE_RETRY" envDefault:"2s" help:"reconnection delay advised to stream clients"`
	StreamWriteTimeout    time.Duration `env:"STREAM_WRITE_TIMEOUT" envDefault:"10s" help:"a stream write blocked longer than this ends the stream"`
	StreamFlushDelay      time.Duration `env:"STREAM_FLUSH_DELAY" envDefault:"0s" help:"how long a stream holds a write so that more messages share its system call; 0: none"`
	DeliveryCheckInterval time.Duration `env:"DELIVERY_CHECK_INTERVAL" envDefault:"5s" help:"how often live delivery is probed and room positions compared with Redis"`
	ShutdownTimeout       time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s" help:"longest wait for requests in flight at shutdown"`
	LogLevel              slog.Level    `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat             string        `env:"LOG_FORMAT" envDefault:"text" help:"text or json"`
	PprofAddr             string        `env:"PPROF_ADDR" help:"loopback host:port of a listener of its own serving Go's runtime profiles (/debug/pprof/); empty: off"`
	JWTSecret             string        `env:"JWT_SECRET" help:"HMAC key (at least 32 bytes) verifying HS256/384/512 tokens; any JWT key turns authentication on"`
	JWTPublicKeyFile      string        `env:"JWT_PUBLIC_KEY_FILE" help:"PEM file of the RSA, ECDSA or Ed25519 public key (or certificate) verifying tokens"`
	JWTJWKSURL            string        `env:"JWT_JWKS_URL" help:"JWKS of the keys verifying tokens: file:///path, read at start, or an http(s) URL, refreshed hourly"`
	JWTIssuer             string        `env:"JWT_ISSUER" help:"iss that tokens must have; empty: not checked"`
	JWTAudience           string        `env:"JWT_AUDIENCE" help:"aud that tokens must include; empty: not checked"`
	JWTLeeway             time.Duration `env:"JWT_LEEWAY" envDefault:"30s" help:"clock skew allowed on exp, nbf and iat"`
	JWTCookie             string        `env:"JWT_COOKIE" envDefault:"roomcast_token" help:"cookie that may carry a stream's token, as EventSource cannot send headers"`
	JWTDefaultRooms       string        `env:"JWT_DEFAULT_ROOMS" envDefault:"read:*,write:*" help:"permissions of tokens without a rooms claim: read:PATTERN, write:PATTERN and moderate:PATTERN, comma-separated, or none"`
	ServerAPIKeys         []string      `env:"SERVER_API_KEYS" envSeparator:"," help:"comma-separated keys (each at least 32 bytes) of your backend: a request with one in X-API-Key may act as any user in any room"`
	PostRate              float64       `env:"POST_RATE" envDefault:"5" help:"posts a second per user (per client IP in open mode), shared by instances via Redis; 0 turns the limit off"`
	PostBurst             int           `env:"POST_BURST" envDefault:"20" help:"posts a client may send at once before POST_RATE applies"`
	MaxStreamsPerClient   int           `env:"MAX_STREAMS_PER_CLIENT" envDefault:"16" help:"open streams per user (per client IP in open mode), 429 beyond; 0: no limit"`
	MaxStreams            int           `env:"MAX_STREAMS" envDefault:"10000" help:"open streams per process; beyond it a stream gets a retry advice and ends; 0: no limit"`
	TrustedProxies        []string      `env:"TRUSTED_PROXIES" envSeparator:"," help:"comma-separated CIDRs of proxies whose X-Forwarded-For names the client"`
	CORSOrigins           []string      `env:"CORS_ORIGINS" envSeparator:"," help:"comma-separated origins (https://chat.example) whose pages may call the API, with credentials"`
	BodyReadTimeout       time.Duration `env:"BODY_READ_TIMEOUT" envDefault:"10s" help:"longest wait for a request body (against slow clients); streams are not affected"`
	PresenceGrace         time.Duration `env:"PRESENCE_GRACE" envDefault:"10s" help:"how long a user stays present after their last stream of a room closed; a reconnection within it is neither leave nor join"`
	PresenceMaxUsers      int           `env:"PRESENCE_MAX_USERS" envDefault:"100" help:"users listed by GET /rooms/{room}/presence (the count is exact)"`
	StreamMaxRooms        int           `env:"STREAM_MAX_ROOMS" envDefault:"50" help:"rooms one GET /stream?rooms= may watch"`
	CursorKey             string        `env:"CURSOR_KEY" help:"HMAC key (at least 32 bytes, the same on every instance) signing the cursors of GET /stream, which then refuses cursors it did not sign; empty: cursors carry a checksum only"`
	WebhookURL            string        `env:"WEBHOOK_URL" help:"http(s) URL that receives every room event as a signed POST (Standard Webhooks); empty: webhooks off"`
	WebhookSecret         string        `env:"WEBHOOK_SECRET" help:"whsec_ and the base64 of 24 to 64 random bytes: the key signing webhooks; required with WEBHOOK_URL"`
	WebhookEvents         []string      `env:"WEBHOOK_EVENTS" envSeparator:"," help:"comma-separated webhook event types to send (README, Webhooks); empty: all"`
	WebhookMaxAge         time.Duration `env:"WEBHOOK_MAX_AGE" envDefault:"24h" help:"how long a failing webhook event is retried before it becomes a dead letter"`
	WebhookLease          time.Duration `env:"WEBHOOK_LEASE" envDefault:"10s" help:"how long a room's webhooks stay with the instance sending them without word from it; another takes over after it"`
	WebhookTimeout        time.Duration `env:"WEBHOOK_TIMEOUT" envDefault:"5s" help:"longest wait for a webhook receiver's answer; at most half of WEBHOOK_LEASE"`

	// Read state: set apart so that its long name does not realign the
	// fields above.
	ReadReceiptsMaxWatchers int `env:"READ_RECEIPTS_MAX_WATCHERS" envDefault:"100" help:"rooms with at most this many present users send read receipts to their members (one per user per room per second); 0: none"`

	// The before-publish hook: set apart, as above.
	PublishHookURL     string        `env:"PUBLISH_HOOK_URL" help:"http(s) URL asked about each post and edit by a user before it is stored (README, Your backend); empty: off"`
	PublishHookSecret  string        `env:"PUBLISH_HOOK_SECRET" help:"whsec_ key signing the hook's requests; empty: WEBHOOK_SECRET's"`
	PublishHookTimeout time.Duration `env:"PUBLISH_HOOK_TIMEOUT" envDefault:"1s" help:"longest wait for the hook's answer, one retry after a failed connection included"`
	PublishHookOnError string        `env:"PUBLISH_HOOK_ON_ERROR" envDefault:"reject" help:"what a post gets when the hook gives no usable answer in time: reject (503) or accept (stored as sent)"`
	PublishHookRooms   []string      `env:"PUBLISH_HOOK_ROOMS" envSeparator:"," envDefault:"*" help:"comma-separated room patterns (lobby, support-*, *) whose posts and edits the hook screens"`

	// Revocations: set apart, as above.
	RevocationTTL time.Duration `env:"REVOCATION_TTL" envDefault:"24h" help:"how long a token revocation without expires_at is kept (POST /admin/tokens/revoke); at least the lifetime of the tokens you issue"`
}

func (c config) redisTimeouts() (dial, read, write, pool time.Duration) {
	return c.RedisTimeout, c.RedisTimeout, c.RedisTimeout, c.RedisTimeout
}

// minCursorKeyBytes is the shortest CURSOR_KEY: 256 bits, as for HS256
// keys (RFC 7518, section 3.2).
const minCursorKeyBytes = 32

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
			name := envName(perr.Name)
			err = fmt.Errorf("%s: invalid value %q: want %s", name, vars[name], wantOfType(perr.Type))
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
		{cfg.MaxMetadataBytes >= 2 && cfg.MaxMetadataBytes <= 1<<20, "MAX_METADATA_BYTES", "2 to 1048576"},
		{cfg.EditWindow >= 0, "EDIT_WINDOW", "0s or a positive duration"},
		{cfg.ClientBuffer >= 1 && cfg.ClientBuffer <= 100_000, "CLIENT_BUFFER", "1 to 100000"},
		{cfg.RedisTimeout > 0, "REDIS_TIMEOUT", "a positive duration"},
		{cfg.IdempotencyTTL >= time.Second, "IDEMPOTENCY_TTL", "at least 1s"},
		{cfg.RoomTTL == 0 || cfg.RoomTTL >= time.Second, "ROOM_TTL", "0s or at least 1s"},
		{cfg.HeartbeatInterval >= time.Second, "HEARTBEAT_INTERVAL", "at least 1s"},
		{cfg.SSERetry >= time.Millisecond, "SSE_RETRY", "at least 1ms"},
		{cfg.StreamWriteTimeout > 0, "STREAM_WRITE_TIMEOUT", "a positive duration"},
		{cfg.StreamFlushDelay >= 0 && cfg.StreamFlushDelay <= time.Second, "STREAM_FLUSH_DELAY", "0 to 1s"},
		{cfg.DeliveryCheckInterval >= 10*time.Millisecond, "DELIVERY_CHECK_INTERVAL", "at least 10ms"},
		{cfg.ShutdownTimeout > 0, "SHUTDOWN_TIMEOUT", "a positive duration"},
		{cfg.LogFormat == "text" || cfg.LogFormat == "json", "LOG_FORMAT", "text or json"},
		{cfg.PprofAddr == "" || loopbackAddr(cfg.PprofAddr), "PPROF_ADDR", "empty (off), or a loopback host:port such as 127.0.0.1:6060"},
		{cfg.KeyPrefix != "" && !strings.ContainsAny(cfg.KeyPrefix, "{}"), "KEY_PREFIX", "non-empty, without { or }"},
		{cfg.JWTLeeway >= 0 && cfg.JWTLeeway <= 5*time.Minute, "JWT_LEEWAY", "0 to 5m"},
		{cfg.PostRate == 0 || cfg.PostRate >= 0.001 && cfg.PostRate <= 1e6, "POST_RATE", "0 (off), or 0.001 to 1000000"},
		{cfg.PostBurst >= 1 && cfg.PostBurst <= 1e6, "POST_BURST", "1 to 1000000"},
		{cfg.MaxStreamsPerClient >= 0, "MAX_STREAMS_PER_CLIENT", "0 or more"},
		{cfg.MaxStreams >= 0, "MAX_STREAMS", "0 or more"},
		{cfg.BodyReadTimeout > 0, "BODY_READ_TIMEOUT", "a positive duration"},
		{cfg.BrokerMode == "pattern" || cfg.BrokerMode == "sharded", "BROKER_MODE", "pattern or sharded"},
		{cfg.BrokerMode != "sharded" || cfg.RedisURL != "", "BROKER_MODE", "pattern without REDIS_URL: the embedded Redis has no sharded Pub/Sub"},
		{cfg.PresenceGrace >= 100*time.Millisecond, "PRESENCE_GRACE", "at least 100ms"},
		{cfg.PresenceMaxUsers >= 1 && cfg.PresenceMaxUsers <= 10_000, "PRESENCE_MAX_USERS", "1 to 10000"},
		{cfg.StreamMaxRooms >= 1 && cfg.StreamMaxRooms <= 100, "STREAM_MAX_ROOMS", "1 to 100"},
		{cfg.ReadReceiptsMaxWatchers >= 0 && cfg.ReadReceiptsMaxWatchers <= 100_000, "READ_RECEIPTS_MAX_WATCHERS", "0 to 100000"},
		{cfg.RevocationTTL >= time.Second, "REVOCATION_TTL", "at least 1s"},
		{cfg.WebhookMaxAge >= time.Second, "WEBHOOK_MAX_AGE", "at least 1s"},
		{cfg.WebhookLease >= time.Second, "WEBHOOK_LEASE", "at least 1s"},
		{cfg.WebhookTimeout > 0 && cfg.WebhookTimeout <= cfg.WebhookLease/2, "WEBHOOK_TIMEOUT", "a positive duration, at most half of WEBHOOK_LEASE"},
	}
	for _, c := range checks {
		if !c.ok {
			return cfg, configError{fmt.Errorf("%s: invalid value %q: want %s", c.name, vars[c.name], c.want)}
		}
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		set, unset := "TLS_CERT_FILE", "TLS_KEY_FILE"
		if cfg.TLSCertFile == "" {
			set, unset = unset, set
		}
		return cfg, configError{fmt.Errorf("%s: not set, but %s is: set both for HTTPS, or neither", unset, set)}
	}
	// A key is a secret: the error gives its length, not its value.
	if n := len(cfg.CursorKey); n > 0 && n < minCursorKeyBytes {
		return cfg, configError{fmt.Errorf("CURSOR_KEY: %d bytes: want at least %d, the same on every instance", n, minCursorKeyBytes)}
	}
	// Likewise: a key's position and length, never its value.
	if _, err := auth.ParseAPIKeys(cfg.ServerAPIKeys); err != nil {
		return cfg, configError{fmt.Errorf("SERVER_API_KEYS: %w", err)}
	}
	if err := checkWebhooks(cfg); err != nil {
		return cfg, configError{err}
	}
	if err := checkPublishHook(cfg); err != nil {
		return cfg, configError{err}
	}
	return cfg, nil
}

// ineffectiveSettings names the settings that are set but have no effect
// with the others, one warning each.
func ineffectiveSettings(cfg config, environ []string) []string {
	set := make(map[string]bool)
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && v != "" {
			set[k] = true
		}
	}
	var out []string
	if cfg.JWTSecret == "" && cfg.JWTPublicKeyFile == "" && cfg.JWTJWKSURL == "" {
		for _, name := range []string{"JWT_ISSUER", "JWT_AUDIENCE", "JWT_LEEWAY", "JWT_COOKIE", "JWT_DEFAULT_ROOMS", "REVOCATION_TTL"} {
			if set[name] {
				out = append(out, name+" is set but has no effect: no JWT key is set (JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL)")
			}
		}
	}
	if cfg.WebhookURL == "" {
		for _, name := range []string{"WEBHOOK_SECRET", "WEBHOOK_EVENTS", "WEBHOOK_MAX_AGE", "WEBHOOK_LEASE", "WEBHOOK_TIMEOUT"} {
			if set[name] {
				out = append(out, name+" is set but has no effect: WEBHOOK_URL is not set")
			}
		}
	}
	if cfg.PostRate == 0 && set["POST_BURST"] {
		out = append(out, "POST_BURST is set but has no effect: POST_RATE=0 turns the post limit off")
	}
	return out
}

// wantOfType says what a setting of type t takes, in place of the parser's
// own error (strconv.ParseInt: …), which speaks Go.
func wantOfType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration such as 500ms, 10s or 5m"
	case reflect.TypeFor[slog.Level]():
		return "debug, info, warn or error"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number in range"
	case reflect.Float64:
		return "a number"
	}
	return "a valid " + t.String()
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
	fmt.Fprintln(w, "Usage: roomcast          serve\n       roomcast -probe URL   exit 0 if URL answers 200 (a container health check)\n\nroomcast is configured by environment variables:")
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

// securityOptions builds the API's authentication, limits and CORS from
// cfg. Bad settings are configErrors. Without a JWT key the API is open,
// and a warning says so.
func securityOptions(ctx context.Context, cfg config, rdb redis.UniversalClient, log *slog.Logger) (api.Security, error) {
	proxies, err := api.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return api.Security{}, configError{fmt.Errorf("TRUSTED_PROXIES: %w", err)}
	}
	origins, err := corsOrigins(cfg.CORSOrigins)
	if err != nil {
		return api.Security{}, configError{fmt.Errorf("CORS_ORIGINS: %w", err)}
	}
	sec := api.Security{
		JWTCookie:           cfg.JWTCookie,
		MaxStreamsPerClient: cfg.MaxStreamsPerClient,
		MaxStreams:          cfg.MaxStreams,
		TrustedProxies:      proxies,
		CORSOrigins:         origins,
		BodyReadTimeout:     cfg.BodyReadTimeout,
	}
	if cfg.PostRate > 0 {
		sec.Posts = redisscripts.NewRateLimiter(rdb, redisscripts.NewKeys(cfg.KeyPrefix), "post", cfg.PostRate, cfg.PostBurst)
	}
	if sec.APIKeys, err = auth.ParseAPIKeys(cfg.ServerAPIKeys); err != nil {
		return api.Security{}, configError{fmt.Errorf("SERVER_API_KEYS: %w", err)} // parseConfig checked them
	}
	if n := sec.APIKeys.Len(); n > 0 {
		log.Info("server API keys on: requests with one in X-API-Key may act as any user in any room", "keys", n)
	}
	var keys []string
	for name, value := range map[string]string{
		"JWT_SECRET": cfg.JWTSecret, "JWT_PUBLIC_KEY_FILE": cfg.JWTPublicKeyFile, "JWT_JWKS_URL": cfg.JWTJWKSURL,
	} {
		if value != "" {
			keys = append(keys, name)
		}
	}
	switch len(keys) {
	case 0:
		log.Warn("no JWT key is set: open mode, anyone may post as anyone into any room (development only); " +
			"set JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL")
		return sec, nil
	case 1:
	default:
		slices.Sort(keys)
		return api.Security{}, configError{fmt.Errorf("%s: set only one of them", strings.Join(keys, ", "))}
	}
	rooms, err := auth.ParseRooms(cfg.JWTDefaultRooms)
	if err != nil {
		return api.Security{}, configError{fmt.Errorf("JWT_DEFAULT_ROOMS: %w", err)}
	}
	verifier, err := auth.New(ctx, auth.Config{
		Secret: []byte(cfg.JWTSecret), PublicKeyFile: cfg.JWTPublicKeyFile, JWKSURL: cfg.JWTJWKSURL,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, Leeway: cfg.JWTLeeway,
		DefaultRooms: rooms, Logger: log,
	})
	if err != nil {
		// The error holds no secret: auth reports lengths and paths only.
		return api.Security{}, configError{fmt.Errorf("%s: %w", keys[0], err)}
	}
	sec.Tokens = verifier
	log.Info("authentication on: posting, history and streams need a token",
		"issuer", cfg.JWTIssuer, "audience", cfg.JWTAudience, "default_rooms", cfg.JWTDefaultRooms)
	return sec, nil
}

// corsOrigins checks that each entry is an origin as browsers send it:
// scheme and host (and port), nothing else. "*" is refused, since the API
// allows credentials to the origins listed.
func corsOrigins(list []string) ([]string, error) {
	var out []string
	for _, o := range list {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Scheme+"://"+u.Host != o {
			return nil, fmt.Errorf("%q: want an exact origin such as https://chat.example or http://localhost:3000", o)
		}
		out = append(out, o)
	}
	return out, nil
}
