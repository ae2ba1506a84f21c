package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/redisscripts/redistest"
)

const (
	testJWTSecret = "s3cr3t-value-of-more-than-32-bytes!"
	testAPIKey    = "s3cr3t-server-key-of-32-bytes-or-more"
	// testHookSecret is a valid whsec_ key; the errors above never show it.
	testHookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

func TestSecuritySettingsRefused(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(notPEM, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  []string
		name string // the variable the error must start with
	}{
		{env: []string{"JWT_SECRET=s3cr3t-short"}, name: "JWT_SECRET"},
		{env: []string{"JWT_SECRET=" + testJWTSecret, "JWT_JWKS_URL=file:///x"}, name: "JWT_JWKS_URL, JWT_SECRET"},
		{env: []string{"JWT_PUBLIC_KEY_FILE=" + notPEM}, name: "JWT_PUBLIC_KEY_FILE"},
		{env: []string{"JWT_PUBLIC_KEY_FILE=" + filepath.Join(dir, "missing.pem")}, name: "JWT_PUBLIC_KEY_FILE"},
		{env: []string{"JWT_JWKS_URL=ftp://keys.example/jwks.json"}, name: "JWT_JWKS_URL"},
		{env: []string{"JWT_SECRET=" + testJWTSecret, "JWT_DEFAULT_ROOMS=admin:*"}, name: "JWT_DEFAULT_ROOMS"},
		{env: []string{"JWT_LEEWAY=1h"}, name: "JWT_LEEWAY"},
		{env: []string{"TRUSTED_PROXIES=10.0.0.0/8,proxy.local"}, name: "TRUSTED_PROXIES"},
		{env: []string{"CORS_ORIGINS=*"}, name: "CORS_ORIGINS"},
		{env: []string{"CORS_ORIGINS=https://chat.example/"}, name: "CORS_ORIGINS"},
		{env: []string{"POST_RATE=-1"}, name: "POST_RATE"},
		{env: []string{"POST_RATE=1e-9"}, name: "POST_RATE"},
		{env: []string{"POST_BURST=0"}, name: "POST_BURST"},
		{env: []string{"MAX_STREAMS=-1"}, name: "MAX_STREAMS"},
		{env: []string{"BODY_READ_TIMEOUT=0s"}, name: "BODY_READ_TIMEOUT"},
		{env: []string{"BROKER_MODE=cluster"}, name: "BROKER_MODE"},
		{env: []string{"BROKER_MODE=sharded"}, name: "BROKER_MODE"}, // the embedded Redis has no SSUBSCRIBE
		{env: []string{"PRESENCE_GRACE=10ms"}, name: "PRESENCE_GRACE"},
		{env: []string{"PRESENCE_MAX_USERS=0"}, name: "PRESENCE_MAX_USERS"},
		{env: []string{"STREAM_MAX_ROOMS=101"}, name: "STREAM_MAX_ROOMS"},
		{env: []string{"CURSOR_KEY=s3cr3t-short"}, name: "CURSOR_KEY"},
		{env: []string{"SERVER_API_KEYS=" + testAPIKey + ",s3cr3t-short"}, name: "SERVER_API_KEYS"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook"}, name: "PUBLISH_HOOK_SECRET"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook", "WEBHOOK_SECRET=whsec_s3cr3t"}, name: "WEBHOOK_SECRET"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook", "PUBLISH_HOOK_SECRET=whsec_s3cr3t"}, name: "PUBLISH_HOOK_SECRET"},
		{env: []string{"PUBLISH_HOOK_URL=hooks.example/check", "PUBLISH_HOOK_SECRET=" + testHookSecret}, name: "PUBLISH_HOOK_URL"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook", "PUBLISH_HOOK_SECRET=" + testHookSecret, "PUBLISH_HOOK_ON_ERROR=ignore"}, name: "PUBLISH_HOOK_ON_ERROR"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook", "PUBLISH_HOOK_SECRET=" + testHookSecret, "PUBLISH_HOOK_TIMEOUT=0s"}, name: "PUBLISH_HOOK_TIMEOUT"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook", "PUBLISH_HOOK_SECRET=" + testHookSecret, "PUBLISH_HOOK_ROOMS=a b"}, name: "PUBLISH_HOOK_ROOMS"},
		{env: []string{"PUBLISH_HOOK_URL=http://127.0.0.1:9/hook", "PUBLISH_HOOK_SECRET=" + testHookSecret, "PUBLISH_HOOK_ROOMS=,"}, name: "PUBLISH_HOOK_ROOMS"},
	} {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			err := run(t.Context(), nil, append([]string{"ADDR=127.0.0.1:0"}, tt.env...), io.Discard,
				func(string) { t.Errorf("listening with %s", tt.env) })
			if !errors.As(err, new(configError)) {
				t.Fatalf("run = %v, want a configError", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.name+":") || strings.Contains(msg, "s3cr3t") {
				t.Fatalf("error %q: want it to start with %s: and to hold no secret", msg, tt.name)
			}
		})
	}
}

func TestRunWithJWTSecret(t *testing.T) {
	r := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+r.URL(), "JWT_SECRET="+testJWTSecret, "LOG_FORMAT=json")
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(testJWTSecret))
	if err != nil {
		t.Fatal(err)
	}

	resp, body := in.request(t, http.MethodPost, "/rooms/lobby/messages", `{"text":"hi"}`, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without a token: %d %s, want 401", resp.StatusCode, body)
	}
	resp, body = in.request(t, http.MethodPost, "/rooms/lobby/messages", `{"text":"hi"}`,
		"Content-Type", "application/json", "Authorization", "Bearer "+token)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST with a token: %d %s, want 201", resp.StatusCode, body)
	}
	var m struct{ User string }
	if err := json.Unmarshal(body, &m); err != nil || m.User != "alice" {
		t.Fatalf("posted %s (%v), want user alice", body, err)
	}
	resp, body = in.request(t, http.MethodGet, "/rooms/lobby/messages?access_token="+token, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("history with a query token: %d %s, want 401", resp.StatusCode, body)
	}

	log := in.out.String()
	if !strings.Contains(log, "authentication on") || strings.Contains(log, "open mode") {
		t.Fatalf("log does not announce authentication:\n%s", log)
	}
	for _, secret := range []string{token, testJWTSecret, strings.Split(token, ".")[2]} {
		if strings.Contains(log, secret) {
			t.Fatalf("log holds a token or the secret:\n%s", log)
		}
	}
}

func TestRunWithServerAPIKeys(t *testing.T) {
	r := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+r.URL(), "JWT_SECRET="+testJWTSecret, "SERVER_API_KEYS= "+testAPIKey+" ,"+testAPIKey+"-2")
	post := func(key string) (*http.Response, []byte) {
		return in.request(t, http.MethodPost, "/rooms/lobby/messages", `{"text":"hi","user":"bob"}`,
			"Content-Type", "application/json", "X-API-Key", key)
	}
	resp, body := post(testAPIKey + "-2")
	var m struct{ User string }
	if err := json.Unmarshal(body, &m); resp.StatusCode != http.StatusCreated || err != nil || m.User != "bob" {
		t.Fatalf("POST with the second key: %d %s, want 201 as bob", resp.StatusCode, body)
	}
	if resp, body := post(testAPIKey + "-3"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST with an unknown key: %d %s, want 401", resp.StatusCode, body)
	}
	log := in.out.String()
	if !strings.Contains(log, "server API keys on") || strings.Contains(log, "s3cr3t") {
		t.Fatalf("log does not announce the keys, or shows one:\n%s", log)
	}
}

func TestRunWarnsInOpenMode(t *testing.T) {
	in := startRun(t, "REDIS_URL="+redistest.Start(t).URL())
	if log := in.out.String(); !strings.Contains(log, "open mode") {
		t.Fatalf("no open-mode warning in\n%s", log)
	}
}

// TestTLSSettingsRefused checks that a TLS setting that cannot serve stops
// start-up, before Redis is dialed, with one line naming the file at fault.
func TestTLSSettingsRefused(t *testing.T) {
	pair, other := newCertPair(t), newCertPair(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(dir, "dir.pem") // a directory: unreadable also for root
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tt := range []struct {
		name      string
		cert, key string
		want      string // the error's beginning
	}{
		{name: "cert without key", cert: pair.certFile, want: "TLS_KEY_FILE: not set, but TLS_CERT_FILE is"},
		{name: "key without cert", key: pair.keyFile, want: "TLS_CERT_FILE: not set, but TLS_KEY_FILE is"},
		{name: "missing cert", cert: missing, key: pair.keyFile, want: "TLS_CERT_FILE: open " + missing},
		{name: "missing key", cert: pair.certFile, key: missing, want: "TLS_KEY_FILE: open " + missing},
		{name: "unreadable cert", cert: unreadable, key: pair.keyFile, want: "TLS_CERT_FILE: read " + unreadable},
		{name: "cert not PEM", cert: notPEM, key: pair.keyFile, want: "TLS_CERT_FILE: " + notPEM + " holds no PEM CERTIFICATE"},
		{name: "key not PEM", cert: pair.certFile, key: notPEM, want: "TLS_KEY_FILE: " + notPEM + " holds no PEM PRIVATE KEY"},
		{name: "swapped", cert: pair.keyFile, key: pair.certFile, want: "TLS_CERT_FILE: " + pair.keyFile + " holds no PEM CERTIFICATE"},
		{name: "key of another cert", cert: pair.certFile, key: other.keyFile, want: "TLS_CERT_FILE, TLS_KEY_FILE: private key does not match public key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Redis at a closed port: the error must come before any dial.
			environ := []string{"ADDR=127.0.0.1:0", "REDIS_URL=redis://" + closedPort(t), "TLS_CERT_FILE=" + tt.cert, "TLS_KEY_FILE=" + tt.key}
			err := run(t.Context(), nil, environ, io.Discard, func(string) { t.Errorf("listening with %s", environ) })
			if !errors.As(err, new(configError)) {
				t.Fatalf("run = %v, want a configError (exit status 2)", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.want) || strings.ContainsAny(msg, "\r\n") || strings.Contains(msg, "tls:") {
				t.Fatalf("error %q: want one line starting with %q, in our words", msg, tt.want)
			}
		})
	}
	t.Run("exit status", func(t *testing.T) {
		t.Setenv("ADDR", "127.0.0.1:0")
		t.Setenv("TLS_CERT_FILE", pair.certFile)
		t.Setenv("TLS_KEY_FILE", "")
		if got := runMain(nil); got != 2 {
			t.Fatalf("exit status with TLS_CERT_FILE alone = %d, want 2", got)
		}
	})
}
