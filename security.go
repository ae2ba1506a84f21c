package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/auth"
)

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
		TokenCookie:         cfg.JWTCookie,
		MaxStreamsPerClient: cfg.MaxStreamsPerClient,
		MaxStreams:          cfg.MaxStreams,
		TrustedProxies:      proxies,
		CORSOrigins:         origins,
		BodyReadTimeout:     cfg.BodyReadTimeout,
	}
	if cfg.PostRate > 0 {
		sec.Posts = api.NewRedisPostLimiter(rdb, cfg.KeyPrefix, cfg.PostRate, cfg.PostBurst)
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
			return nil, errors.New("want exact origins such as https://chat.example or http://localhost:3000, separated by commas")
		}
		out = append(out, o)
	}
	return out, nil
}
