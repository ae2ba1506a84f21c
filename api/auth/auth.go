// Package auth verifies the JSON Web Tokens that identify roomcast's users
// and carry their room permissions. Signatures are checked by golang-jwt
// with keys from an HMAC secret, a PEM public key or a JSON Web Key Set.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The errors of Verify. Every failure wraps exactly one of them.
var (
	// ErrExpired is a token that was valid but whose exp has passed.
	ErrExpired = errors.New("token expired")
	// ErrInvalid is any other token that cannot be trusted: malformed, badly
	// signed, signed with an algorithm the key is not for, not yet valid,
	// for another issuer or audience, or without sub or exp.
	ErrInvalid = errors.New("invalid token")
)

// Config selects the verification key and the claims a token must carry.
// Exactly one of Secret, PublicKeyFile and JWKSURL is set. Each field is
// the setting JWT_<FIELD> (JWT_SECRET, JWT_JWKS_URL, …): in this package,
// which is the JWT verifier, the prefix would only repeat it.
type Config struct {
	Secret        []byte // HMAC key (HS256, HS384, HS512), at least 32 bytes
	PublicKeyFile string // PEM public key or certificate: RSA (RS*, PS*), ECDSA (ES* by curve) or Ed25519 (EdDSA)
	JWKSURL       string // JSON Web Key Set: file:///path, read once, or http(s), refreshed hourly

	Issuer   string        // if set, the required iss
	Audience string        // if set, a required member of aud
	Leeway   time.Duration // clock skew allowed on exp, nbf and iat

	// DefaultRooms are the permissions of a token without a rooms claim.
	DefaultRooms Rooms

	Logger *slog.Logger // JWKS refresh failures
}

// Claims is what a verified token, or a server API key, says about its
// bearer.
type Claims struct {
	Subject string // "" for a server API key
	// ValidUntil is when the token stops being accepted: exp plus the
	// leeway; zero for a server API key, which does not expire.
	ValidUntil time.Time
	Rooms      Rooms
	// JTI is the token's jti claim, "" when it has none; IssuedAt its
	// iat, zero when it has none. A revocation names a token by them.
	JTI      string
	IssuedAt time.Time
	// Key is the position of the server API key of the request in
	// SERVER_API_KEYS, counted from 1; 0 for a token. A request with a key
	// may act as any user (see ServerClaims).
	Key int
}

// Server reports whether the claims are a server API key's.
func (c Claims) Server() bool { return c.Key > 0 }

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	keys         keySet
	parser       *jwt.Parser
	leeway       time.Duration
	defaultRooms Rooms
}

// New returns a Verifier for cfg. It reads the key file or fetches the
// JWKS now, and fails if that is impossible or the key is unusable; ctx
// bounds the fetch and ends the periodic refresh of an http(s) JWKS.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	keys, err := loadKeys(ctx, cfg)
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(keys.methods),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{
		keys: keys, parser: jwt.NewParser(opts...),
		leeway: cfg.Leeway, defaultRooms: cfg.DefaultRooms,
	}, nil
}

// tokenClaims is the JSON payload of a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Rooms *Rooms `json:"rooms"`
}

// Verify checks token's signature and claims and returns what it grants.
// The error wraps ErrExpired or ErrInvalid; it never contains the token.
// ctx bounds a JWKS refresh that an unknown key id may trigger.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	var c tokenClaims
	_, err := v.parser.ParseWithClaims(token, &c, v.keys.keyfunc(ctx))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrExpired
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	case c.Subject == "":
		return Claims{}, fmt.Errorf("%w: no sub claim", ErrInvalid)
	}
	rooms := v.defaultRooms
	if c.Rooms != nil {
		rooms = *c.Rooms
	}
	claims := Claims{Subject: c.Subject, ValidUntil: c.ExpiresAt.Add(v.leeway), Rooms: rooms, JTI: c.ID}
	if c.IssuedAt != nil {
		claims.IssuedAt = c.IssuedAt.Time
	}
	return claims, nil
}
