package api_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/broker/chat"
)

var testSecret = []byte("test-secret-of-at-least-32-bytes!!")

// mint signs a token for sub that expires in an hour; extra claims are
// added, and a nil value removes a claim.
func mint(t testing.TB, method jwt.SigningMethod, key any, sub string, extra jwt.MapClaims) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

func hs256(t testing.TB, sub string, extra jwt.MapClaims) string {
	t.Helper()
	return mint(t, jwt.SigningMethodHS256, testSecret, sub, extra)
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// verifier returns a Verifier for cfg, with every room allowed by default.
func verifier(t testing.TB, cfg auth.Config) *auth.Verifier {
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

// authServer is a server that verifies HS256 tokens signed with testSecret.
func authServer(t testing.TB, sec api.Security) *testServer {
	t.Helper()
	if sec.Tokens == nil {
		sec.Tokens = verifier(t, auth.Config{Secret: testSecret})
	}
	if sec.JWTCookie == "" {
		sec.JWTCookie = "roomcast_token"
	}
	return startServer(t, serverConfig{Security: sec})
}

// postAs posts text to room with header pairs and returns the answer.
func (s *testServer) postAs(t testing.TB, room, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, http.MethodPost, "/rooms/"+room+"/messages", body, append([]string{"Content-Type", "application/json"}, header...)...)
}

// problemOf decodes a problem answer, checking its media type.
func problemOf(t testing.TB, resp *http.Response, body []byte) api.Problem {
	t.Helper()
	if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", got, body)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem %s: %v", body, err)
	}
	if p.Status != resp.StatusCode {
		t.Fatalf("problem status %d, answer %d", p.Status, resp.StatusCode)
	}
	return p
}

// expectStatus fails unless resp has status want and, for errors, a
// problem of type typ.
func expectStatus(t testing.TB, resp *http.Response, body []byte, want int, typ string) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, want, body)
	}
	if typ != "" {
		if p := problemOf(t, resp, body); p.Type != typ {
			t.Fatalf("problem type = %q, want %q", p.Type, typ)
		}
	}
}

// historyLen is the number of messages a room holds, read from Redis.
func (s *testServer) historyLen(t testing.TB, room string) int {
	t.Helper()
	page, err := s.Store.History(t.Context(), room, chat.Query{Direction: chat.Latest, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Messages)
}

const (
	probUnauthorized = "urn:roomcast:problem:unauthorized"
	probForbidden    = "urn:roomcast:problem:forbidden"
	probRateLimited  = "urn:roomcast:problem:rate-limited"
	probTooMany      = "urn:roomcast:problem:too-many-streams"
)

func TestAuthRejectsMissingAndBadTokens(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{})
	otherKey := []byte("another-secret-of-at-least-32-bytes")
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		header    []string
		challenge string
		problem   string // probUnauthorized if empty
	}{
		{name: "no token", challenge: `Bearer realm="roomcast"`},
		{name: "basic credentials", header: []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}, challenge: `Bearer realm="roomcast"`},
		{name: "expired", header: bearer(hs256(t, "alice", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})),
			challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token has expired"`,
			problem:   "urn:roomcast:problem:token-expired"},
		{name: "wrong key", header: bearer(mint(t, jwt.SigningMethodHS256, otherKey, "alice", nil)),
			challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token is invalid"`},
		{name: "alg none", header: bearer(none),
			challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token is invalid"`},
		{name: "RS256 to an HMAC server", header: bearer(mint(t, jwt.SigningMethodRS256, rsaKey, "alice", nil)),
			challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token is invalid"`},
		{name: "garbage", header: bearer("a.b.c"),
			challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token is invalid"`},
		{name: "huge", header: bearer(strings.Repeat("A", 9000)),
			challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token is invalid"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, req := range []struct{ method, path, body string }{
				{http.MethodPost, "/rooms/lobby/messages", `{"text":"hi"}`},
				{http.MethodGet, "/rooms/lobby/messages", ""},
				{http.MethodGet, "/rooms/lobby/stream", ""},
			} {
				resp, body := s.do(t, req.method, req.path, req.body, append([]string{"Content-Type", "application/json"}, tc.header...)...)
				expectStatus(t, resp, body, http.StatusUnauthorized, cmp(tc.problem, probUnauthorized))
				if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
					t.Fatalf("%s %s: WWW-Authenticate = %q, want %q", req.method, req.path, got, tc.challenge)
				}
			}
		})
	}
	if n := s.historyLen(t, "lobby"); n != 0 {
		t.Fatalf("history holds %d messages after rejected posts, want 0", n)
	}
}

func TestAuthQueryTokenOnlyForStreams(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{})
	token := hs256(t, "alice", nil)
	resp, body := s.postAs(t, "lobby", `{"text":"hi"}`)
	expectStatus(t, resp, body, http.StatusUnauthorized, probUnauthorized)
	resp, body = s.do(t, http.MethodPost, "/rooms/lobby/messages?access_token="+token, `{"text":"hi"}`, "Content-Type", "application/json")
	expectStatus(t, resp, body, http.StatusUnauthorized, probUnauthorized)
	resp, body = s.do(t, http.MethodPost, "/rooms/lobby/messages", `{"text":"hi"}`, "Content-Type", "application/json",
		"Cookie", "roomcast_token="+token)
	expectStatus(t, resp, body, http.StatusUnauthorized, probUnauthorized)
	resp, body = s.do(t, http.MethodGet, "/rooms/lobby/messages?access_token="+token, "")
	expectStatus(t, resp, body, http.StatusUnauthorized, probUnauthorized)
	if n := s.historyLen(t, "lobby"); n != 0 {
		t.Fatalf("history holds %d messages, want 0", n)
	}
}

// writePEM writes pub as a PKIX PEM file.
func writePEM(t testing.TB, pub crypto.PublicKey) string {
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

func TestAuthPublicKeys(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPath := writePEM(t, &rsaKey.PublicKey)
	rsaPEM, err := os.ReadFile(rsaPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		file   string
		good   string
		forged []string
	}{
		{
			name: "RS256", file: rsaPath, good: mint(t, jwt.SigningMethodRS256, rsaKey, "rita", nil),
			forged: []string{
				mint(t, jwt.SigningMethodHS256, rsaPEM, "rita", nil), // HS/RS confusion
				mint(t, jwt.SigningMethodES256, ecKey, "rita", nil),
				mint(t, jwt.SigningMethodRS256, rsaKey, "rita", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}),
			},
		},
		{
			name: "ES256", file: writePEM(t, &ecKey.PublicKey), good: mint(t, jwt.SigningMethodES256, ecKey, "erin", nil),
			forged: []string{
				mint(t, jwt.SigningMethodES256, otherEC, "erin", nil),
				mint(t, jwt.SigningMethodRS256, rsaKey, "erin", nil),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{PublicKeyFile: tc.file})})
			for i, token := range tc.forged {
				resp, body := s.postAs(t, "lobby", `{"text":"forged"}`, bearer(token)...)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("forged token %d: status %d, want 401; body %s", i, resp.StatusCode, body)
				}
			}
			resp, body := s.postAs(t, "lobby", `{"text":"signed"}`, bearer(tc.good)...)
			expectStatus(t, resp, body, http.StatusCreated, "")
			var m message
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			claims, _, err := jwt.NewParser().ParseUnverified(tc.good, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			if sub, _ := claims.Claims.GetSubject(); m.User != sub || m.Text != "signed" {
				t.Fatalf("stored %+v, want text signed by %q", m, sub)
			}
			if n := s.historyLen(t, "lobby"); n != 1 {
				t.Fatalf("history holds %d messages, want only the signed one", n)
			}
		})
	}
}

func TestAuthIssuerAndAudience(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret, Issuer: "https://id.test", Audience: "roomcast"})})
	for _, tc := range []struct {
		name   string
		claims jwt.MapClaims
		want   int
	}{
		{name: "right issuer and audience", claims: jwt.MapClaims{"iss": "https://id.test", "aud": "roomcast"}, want: http.StatusCreated},
		{name: "audience among several", claims: jwt.MapClaims{"iss": "https://id.test", "aud": []string{"x", "roomcast"}}, want: http.StatusCreated},
		{name: "wrong issuer", claims: jwt.MapClaims{"iss": "https://evil.test", "aud": "roomcast"}, want: http.StatusUnauthorized},
		{name: "wrong audience", claims: jwt.MapClaims{"iss": "https://id.test", "aud": "other"}, want: http.StatusUnauthorized},
		{name: "no audience", claims: jwt.MapClaims{"iss": "https://id.test"}, want: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.historyLen(t, "r")
			resp, body := s.postAs(t, "r", `{"text":"x"}`, bearer(hs256(t, "alice", tc.claims))...)
			expectStatus(t, resp, body, tc.want, "")
			stored := 0
			if tc.want == http.StatusCreated {
				stored = 1
			}
			if got := s.historyLen(t, "r") - before; got != stored {
				t.Fatalf("%d messages stored, want %d", got, stored)
			}
		})
	}
}

func TestAuthRoomPermissions(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret, DefaultRooms: auth.Rooms{Read: []string{"public-*"}}})})
	scoped := hs256(t, "sam", jwt.MapClaims{"rooms": map[string]any{"read": []string{"support-*"}, "write": []string{"support-42"}}})
	everything := hs256(t, "root", jwt.MapClaims{"rooms": map[string]any{"read": []string{"*"}, "write": []string{"*"}}})
	unscoped := hs256(t, "dana", nil) // JWT_DEFAULT_ROOMS applies: read public-*
	for _, tc := range []struct {
		name         string
		token        string
		method, path string
		want         int
	}{
		{name: "write the exact room", token: scoped, method: http.MethodPost, path: "/rooms/support-42/messages", want: http.StatusCreated},
		{name: "write another room of the prefix", token: scoped, method: http.MethodPost, path: "/rooms/support-43/messages", want: http.StatusForbidden},
		{name: "read a room of the prefix", token: scoped, method: http.MethodGet, path: "/rooms/support-43/messages", want: http.StatusOK},
		{name: "read outside the prefix", token: scoped, method: http.MethodGet, path: "/rooms/lobby/messages", want: http.StatusForbidden},
		{name: "stream outside the prefix", token: scoped, method: http.MethodGet, path: "/rooms/supportx/stream", want: http.StatusForbidden},
		{name: "star writes anywhere", token: everything, method: http.MethodPost, path: "/rooms/lobby/messages", want: http.StatusCreated},
		{name: "default read", token: unscoped, method: http.MethodGet, path: "/rooms/public-1/messages", want: http.StatusOK},
		{name: "default has no write", token: unscoped, method: http.MethodPost, path: "/rooms/public-1/messages", want: http.StatusForbidden},
		{name: "default read elsewhere", token: unscoped, method: http.MethodGet, path: "/rooms/lobby/messages", want: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := strings.Split(tc.path, "/")[2]
			before := s.historyLen(t, room)
			resp, body := s.do(t, tc.method, tc.path, `{"text":"x"}`, append([]string{"Content-Type", "application/json"}, bearer(tc.token)...)...)
			if tc.want == http.StatusForbidden {
				expectStatus(t, resp, body, tc.want, probForbidden)
				if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
					t.Fatalf("WWW-Authenticate = %q, want insufficient_scope", got)
				}
			} else {
				expectStatus(t, resp, body, tc.want, "")
			}
			stored := 0
			if tc.method == http.MethodPost && tc.want == http.StatusCreated {
				stored = 1
			}
			if got := s.historyLen(t, room) - before; got != stored {
				t.Fatalf("%d messages stored, want %d", got, stored)
			}
		})
	}
}

func TestAuthPostingUserIsTheSubject(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{})
	token := hs256(t, "alice", nil)
	for _, tc := range []struct {
		name string
		body string
		want int
	}{
		{name: "no user", body: `{"text":"a"}`, want: http.StatusCreated},
		{name: "the same user", body: `{"text":"b","user":"alice"}`, want: http.StatusCreated},
		{name: "another user", body: `{"text":"c","user":"mallory"}`, want: http.StatusForbidden},
		{name: "anonymous", body: `{"text":"d","user":"anonymous"}`, want: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.postAs(t, "r", tc.body, bearer(token)...)
			if tc.want == http.StatusForbidden {
				expectStatus(t, resp, body, tc.want, probForbidden)
				return
			}
			expectStatus(t, resp, body, tc.want, "")
			var m message
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			if m.User != "alice" {
				t.Fatalf("user = %q, want alice", m.User)
			}
		})
	}
	if n := s.historyLen(t, "r"); n != 2 {
		t.Fatalf("history holds %d messages, want 2", n)
	}
	resp, body := s.postAs(t, "r", `{"text":"x"}`, bearer(hs256(t, strings.Repeat("x", 65), nil))...)
	expectStatus(t, resp, body, http.StatusForbidden, probForbidden)
}

func TestAuthStreamTokenSources(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{JWTCookie: "chat_token"})
	token := hs256(t, "alice", nil)
	for _, tc := range []struct {
		name   string
		path   string
		header []string
	}{
		{name: "header", path: "/rooms/r/stream", header: bearer(token)},
		{name: "query", path: "/rooms/r/stream?access_token=" + url.QueryEscape(token)},
		{name: "cookie", path: "/rooms/r/stream", header: []string{"Cookie", "chat_token=" + token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.openStream(t, tc.path, tc.header...)
			if c.resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", c.resp.StatusCode)
			}
			c.awaitOpen()
			resp, body := s.postAs(t, "r", `{"text":"`+tc.name+`"}`, bearer(token)...)
			expectStatus(t, resp, body, http.StatusCreated, "")
			if m := c.nextMessage(); m.Text != tc.name || m.User != "alice" {
				t.Fatalf("streamed %+v", m)
			}
		})
	}
	c := s.openStream(t, "/rooms/r/stream", "Cookie", "roomcast_token="+token)
	if c.resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token in a cookie of another name: status %d, want 401", c.resp.StatusCode)
	}
}

func TestAuthStreamEndsWhenTokenExpires(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{})
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
	c := s.openStream(t, "/rooms/r/stream", bearer(hs256(t, "alice", jwt.MapClaims{"exp": exp.Unix()}))...)
	if c.resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", c.resp.StatusCode)
	}
	c.awaitOpen()
	var last event
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if ok {
				last = ev
				continue
			}
			if time.Now().Before(exp) {
				t.Fatalf("stream ended at %v, before the token's expiry %v", time.Now(), exp)
			}
			if want := "token expired; reconnect with a new token"; last.Comment != want {
				t.Fatalf("last event %+v, want the comment %q", last, want)
			}
			return
		case <-deadline:
			t.Fatalf("stream still open 10s after its token expired")
		}
	}
}
