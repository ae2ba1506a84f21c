package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// minSecretBytes is the shortest HMAC secret accepted: 256 bits, the
// strength of HS256.
const minSecretBytes = 32

// asymmetricMethods are the algorithms a JWKS may serve keys for. HMAC is
// left out: a key set is public, so a symmetric key in it verifies nothing.
var asymmetricMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// keySet is where tokens' signatures are checked: a key function and the
// only algorithms that may be used with its keys.
type keySet struct {
	keyfunc func(ctx context.Context) jwt.Keyfunc
	methods []string
}

// fixedKey is the keyfunc of a single configured key.
func fixedKey(key any) func(context.Context) jwt.Keyfunc {
	return func(context.Context) jwt.Keyfunc {
		return func(*jwt.Token) (any, error) { return key, nil }
	}
}

func loadKeys(ctx context.Context, cfg Config) (keySet, error) {
	sources := 0
	for _, set := range []bool{len(cfg.Secret) > 0, cfg.PublicKeyFile != "", cfg.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	switch {
	case sources != 1:
		return keySet{}, errors.New("configure exactly one of an HMAC secret, a public key file and a JWKS URL")
	case len(cfg.Secret) > 0:
		return hmacKey(cfg.Secret)
	case cfg.PublicKeyFile != "":
		return publicKeyFile(cfg.PublicKeyFile)
	default:
		return jwks(ctx, cfg.JWKSURL, cfg.Logger)
	}
}

func hmacKey(secret []byte) (keySet, error) {
	if len(secret) < minSecretBytes {
		return keySet{}, fmt.Errorf("the HMAC secret is %d bytes; want at least %d", len(secret), minSecretBytes)
	}
	key := append([]byte(nil), secret...)
	return keySet{
		keyfunc: fixedKey(key),
		methods: []string{"HS256", "HS384", "HS512"},
	}, nil
}

// publicKeyFile reads the first PEM block of path: a public key (PKIX or
// PKCS #1) or a certificate.
func publicKeyFile(path string) (keySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return keySet{}, fmt.Errorf("read public key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return keySet{}, fmt.Errorf("public key file %s holds no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return keySet{}, fmt.Errorf("public key file %s holds a %q block; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", path, block.Type)
	}
	if err != nil {
		return keySet{}, fmt.Errorf("parse public key in %s: %w", path, err)
	}
	methods, err := methodsFor(key)
	if err != nil {
		return keySet{}, fmt.Errorf("public key in %s: %w", path, err)
	}
	return keySet{keyfunc: fixedKey(key), methods: methods}, nil
}

// methodsFor returns the algorithms that may be verified with key, so that
// no token can have its signature checked by a different kind of algorithm
// than the key was made for.
func methodsFor(key any) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits; want at least 2048", k.N.BitLen())
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s is not supported", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// jwks loads a JSON Web Key Set from a file:// URL once, or from an
// http(s) URL that is fetched now and refreshed hourly until ctx ends (and,
// at most every five minutes, when a token names an unknown key id).
func jwks(ctx context.Context, rawURL string, log *slog.Logger) (keySet, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return keySet{}, fmt.Errorf("JWKS URL: %w", err)
	}
	var kf keyfunc.Keyfunc
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return keySet{}, fmt.Errorf("JWKS URL %q: a file URL has no host; write file:///absolute/path", rawURL)
		}
		data, err := os.ReadFile(u.Path)
		if err != nil {
			return keySet{}, fmt.Errorf("read JWKS: %w", err)
		}
		if kf, err = keyfunc.NewJWKSetJSON(data); err != nil {
			return keySet{}, fmt.Errorf("JWKS in %s: %w", u.Path, err)
		}
	case "http", "https":
		fail := false
		kf, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{rawURL}, keyfunc.Override{
			HTTPTimeout:               10 * time.Second,
			NoErrorReturnFirstHTTPReq: &fail,
			// A token naming an unknown key id may trigger a refresh, at
			// most every five minutes; other such tokens fail at once
			// rather than wait, so forged key ids cannot hold requests.
			RateLimitWaitMax: time.Millisecond,
			RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
				return func(_ context.Context, err error) { log.Warn("JWKS refresh failed", "url", rawURL, "err", err) }
			},
		})
		if err != nil {
			return keySet{}, fmt.Errorf("fetch JWKS: %w", err)
		}
	default:
		return keySet{}, fmt.Errorf("JWKS URL %q: want a file://, http:// or https:// URL", rawURL)
	}
	keys, err := kf.Storage().KeyReadAll(ctx)
	if err != nil {
		return keySet{}, fmt.Errorf("read JWKS: %w", err)
	}
	if len(keys) == 0 {
		return keySet{}, fmt.Errorf("JWKS at %s holds no usable key", rawURL)
	}
	return keySet{keyfunc: kf.KeyfuncCtx, methods: asymmetricMethods}, nil
}
