package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"roomcast/api/auth"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var secret = []byte("0123456789abcdef0123456789abcdef")

// sign mints a token with claims over the registered defaults (sub alice,
// exp in an hour); a nil value in claims deletes that claim.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header ...string) string {
	t.Helper()
	all := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	tok := jwt.NewWithClaims(method, all)
	for i := 0; i+1 < len(header); i += 2 {
		tok.Header[header[i]] = header[i+1]
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// pemFile writes pub as a PKIX PEM file and returns its path.
func pemFile(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newVerifier(t testing.TB, cfg auth.Config) *auth.Verifier {
	t.Helper()
	if cfg.DefaultRooms.Read == nil && cfg.DefaultRooms.Write == nil {
		cfg.DefaultRooms = auth.Rooms{Read: []string{"*"}, Write: []string{"*"}}
	}
	v, err := auth.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return v
}

var (
	rsaKey   = must(rsa.GenerateKey(rand.Reader, 2048))
	ecKey    = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	ec384Key = must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	_, edKey = must2(ed25519.GenerateKey(rand.Reader))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func TestVerifyAcceptsEachKeyKind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    func(t *testing.T) auth.Config
		method jwt.SigningMethod
		key    any
	}{
		{name: "HS256", cfg: func(*testing.T) auth.Config { return auth.Config{Secret: secret} }, method: jwt.SigningMethodHS256, key: secret},
		{name: "HS512", cfg: func(*testing.T) auth.Config { return auth.Config{Secret: secret} }, method: jwt.SigningMethodHS512, key: secret},
		{name: "RS256", cfg: func(t *testing.T) auth.Config { return auth.Config{PublicKeyFile: pemFile(t, &rsaKey.PublicKey)} }, method: jwt.SigningMethodRS256, key: rsaKey},
		{name: "PS384", cfg: func(t *testing.T) auth.Config { return auth.Config{PublicKeyFile: pemFile(t, &rsaKey.PublicKey)} }, method: jwt.SigningMethodPS384, key: rsaKey},
		{name: "ES256", cfg: func(t *testing.T) auth.Config { return auth.Config{PublicKeyFile: pemFile(t, &ecKey.PublicKey)} }, method: jwt.SigningMethodES256, key: ecKey},
		{name: "ES384", cfg: func(t *testing.T) auth.Config { return auth.Config{PublicKeyFile: pemFile(t, &ec384Key.PublicKey)} }, method: jwt.SigningMethodES384, key: ec384Key},
		{name: "EdDSA", cfg: func(t *testing.T) auth.Config { return auth.Config{PublicKeyFile: pemFile(t, edKey.Public())} }, method: jwt.SigningMethodEdDSA, key: edKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.cfg(t))
			exp := time.Now().Add(time.Hour).Truncate(time.Second)
			tok := sign(t, tc.method, tc.key, jwt.MapClaims{
				"sub": "bob", "exp": exp.Unix(), "rooms": map[string]any{"read": []string{"a-*"}, "write": []string{"a-1"}},
			})
			got, err := v.Verify(t.Context(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := auth.Claims{Subject: "bob", ValidUntil: exp, Rooms: auth.Rooms{Read: []string{"a-*"}, Write: []string{"a-1"}}}
			if got.Subject != want.Subject || !got.ValidUntil.Equal(want.ValidUntil) ||
				!slices.Equal(got.Rooms.Read, want.Rooms.Read) || !slices.Equal(got.Rooms.Write, want.Rooms.Write) {
				t.Fatalf("claims = %+v, want %+v", got, want)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	hs := newVerifier(t, auth.Config{Secret: secret, Issuer: "https://issuer.test", Audience: "roomcast"})
	good := jwt.MapClaims{"iss": "https://issuer.test", "aud": "roomcast"}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	rsaPEM, err := os.ReadFile(pemFile(t, &rsaKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	rs := newVerifier(t, auth.Config{PublicKeyFile: pemFile(t, &rsaKey.PublicKey)})
	es := newVerifier(t, auth.Config{PublicKeyFile: pemFile(t, &ecKey.PublicKey)})
	otherRSA := must(rsa.GenerateKey(rand.Reader, 2048))
	noneToken := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
			SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	for _, tc := range []struct {
		name  string
		v     *auth.Verifier
		token string
		want  error
	}{
		{name: "valid control", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, good), want: nil},
		{name: "expired", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})), want: auth.ErrExpired},
		{name: "not yet valid", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()})), want: auth.ErrInvalid},
		{name: "issued in the future", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"iat": time.Now().Add(time.Hour).Unix()})), want: auth.ErrInvalid},
		{name: "wrong issuer", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"iss": "https://evil.test"})), want: auth.ErrInvalid},
		{name: "no issuer", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"aud": "roomcast"}), want: auth.ErrInvalid},
		{name: "wrong audience", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"aud": []string{"other"}})), want: auth.ErrInvalid},
		{name: "no exp", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"exp": nil})), want: auth.ErrInvalid},
		{name: "no sub", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"sub": nil})), want: auth.ErrInvalid},
		{name: "wrong secret", v: hs, token: sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two byt"), good), want: auth.ErrInvalid},
		{name: "alg none", v: hs, token: noneToken(), want: auth.ErrInvalid},
		{name: "alg none to RSA", v: rs, token: noneToken(), want: auth.ErrInvalid},
		{name: "rooms not an object", v: hs, token: sign(t, jwt.SigningMethodHS256, secret, with(jwt.MapClaims{"rooms": "*"})), want: auth.ErrInvalid},
		{name: "tampered payload", v: hs, token: tamper(sign(t, jwt.SigningMethodHS256, secret, good)), want: auth.ErrInvalid},
		{name: "garbage", v: hs, token: "not.a.token", want: auth.ErrInvalid},
		{name: "empty", v: hs, token: "", want: auth.ErrInvalid},
		{name: "HS256 keyed with the RSA public key", v: rs, token: sign(t, jwt.SigningMethodHS256, rsaPEM, nil), want: auth.ErrInvalid},
		{name: "RS256 by another key", v: rs, token: sign(t, jwt.SigningMethodRS256, otherRSA, nil), want: auth.ErrInvalid},
		{name: "RS256 to an EC key", v: es, token: sign(t, jwt.SigningMethodRS256, rsaKey, nil), want: auth.ErrInvalid},
		{name: "ES384 to a P-256 key", v: es, token: sign(t, jwt.SigningMethodES384, ec384Key, nil), want: auth.ErrInvalid},
		{name: "RS256 control", v: rs, token: sign(t, jwt.SigningMethodRS256, rsaKey, nil), want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			if err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error %q contains the token", err)
			}
		})
	}
}

// tamper changes the payload of a token, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	payload := []byte(parts[1])
	if payload[2] == 'A' {
		payload[2] = 'B'
	} else {
		payload[2] = 'A'
	}
	return parts[0] + "." + string(payload) + "." + parts[2]
}

func TestVerifyLeeway(t *testing.T) {
	v := newVerifier(t, auth.Config{Secret: secret, Leeway: 30 * time.Second})
	exp := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	got, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": exp.Unix()}))
	if err != nil {
		t.Fatalf("token expired 10s ago with 30s leeway: %v", err)
	}
	if want := exp.Add(30 * time.Second); !got.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil = %v, want %v", got.ValidUntil, want)
	}
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}))
	if !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("token expired 60s ago with 30s leeway: error %v, want ErrExpired", err)
	}
}

func TestVerifyDefaultRooms(t *testing.T) {
	def := auth.Rooms{Read: []string{"public-*"}}
	v := newVerifier(t, auth.Config{Secret: secret, DefaultRooms: def})
	got, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Rooms.Read, def.Read) || got.Rooms.Write != nil {
		t.Fatalf("rooms = %+v, want the default %+v", got.Rooms, def)
	}
	got, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"rooms": map[string]any{}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Rooms.CanRead("public-1") || got.Rooms.CanWrite("public-1") {
		t.Fatalf("an empty rooms claim grants %+v, want nothing", got.Rooms)
	}
}

// jwksJSON returns a JWK Set holding pub under kid.
func jwksJSON(t testing.TB, pubs map[string]crypto.PublicKey) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, pub := range pubs {
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestVerifyJWKS(t *testing.T) {
	data := jwksJSON(t, map[string]crypto.PublicKey{"rsa-1": &rsaKey.PublicKey, "ec-1": &ecKey.PublicKey})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fetches := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches <- struct{}{}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)

	for _, url := range []string{"file://" + path, srv.URL + "/jwks.json"} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			t.Cleanup(cancel)
			v, err := auth.New(ctx, auth.Config{JWKSURL: url, DefaultRooms: auth.Rooms{Read: []string{"*"}}})
			if err != nil {
				t.Fatalf("auth.New: %v", err)
			}
			for _, tc := range []struct {
				name  string
				token string
				ok    bool
			}{
				{name: "RS256 with kid", token: sign(t, jwt.SigningMethodRS256, rsaKey, nil, "kid", "rsa-1"), ok: true},
				{name: "ES256 with kid", token: sign(t, jwt.SigningMethodES256, ecKey, nil, "kid", "ec-1"), ok: true},
				{name: "RS256 without kid", token: sign(t, jwt.SigningMethodRS256, rsaKey, nil), ok: true},
				{name: "RS256 under the EC kid", token: sign(t, jwt.SigningMethodRS256, rsaKey, nil, "kid", "ec-1"), ok: false},
				{name: "unknown kid", token: sign(t, jwt.SigningMethodRS256, rsaKey, nil, "kid", "nope"), ok: false},
				{name: "HS256 keyed with the JWKS", token: sign(t, jwt.SigningMethodHS256, data, nil, "kid", "rsa-1"), ok: false},
				{name: "another RSA key", token: sign(t, jwt.SigningMethodRS256, must(rsa.GenerateKey(rand.Reader, 2048)), nil), ok: false},
			} {
				_, err := v.Verify(t.Context(), tc.token)
				if (err == nil) != tc.ok {
					t.Fatalf("%s: Verify error = %v, want ok %v", tc.name, err, tc.ok)
				}
			}
		})
	}
	if len(fetches) == 0 {
		t.Fatalf("the JWKS URL was never fetched")
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	smallRSA := must(rsa.GenerateKey(rand.Reader, 1024))
	for _, tc := range []struct {
		name string
		cfg  auth.Config
	}{
		{name: "no key", cfg: auth.Config{}},
		{name: "two keys", cfg: auth.Config{Secret: secret, JWKSURL: "file:///nonexistent"}},
		{name: "short secret", cfg: auth.Config{Secret: []byte("short")}},
		{name: "missing PEM file", cfg: auth.Config{PublicKeyFile: filepath.Join(dir, "missing.pem")}},
		{name: "not PEM", cfg: auth.Config{PublicKeyFile: write("junk.pem", []byte("hello"))}},
		{name: "private key", cfg: auth.Config{PublicKeyFile: write("priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}},
		{name: "1024-bit RSA", cfg: auth.Config{PublicKeyFile: pemFile(t, &smallRSA.PublicKey)}},
		{name: "empty JWKS", cfg: auth.Config{JWKSURL: "file://" + write("empty.json", []byte(`{"keys":[]}`))}},
		{name: "JWKS not JSON", cfg: auth.Config{JWKSURL: "file://" + write("bad.json", []byte(`nope`))}},
		{name: "JWKS unreachable", cfg: auth.Config{JWKSURL: "http://127.0.0.1:1/jwks.json"}},
		{name: "JWKS scheme", cfg: auth.Config{JWKSURL: "ftp://example.test/jwks.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := auth.New(t.Context(), tc.cfg); err == nil {
				t.Fatalf("auth.New succeeded, want an error")
			}
		})
	}
}
