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

const testJWTSecret = "s3cr3t-value-of-more-than-32-bytes!"

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
		{env: []string{"PRESENCE_GRACE=10ms"}, name: "PRESENCE_GRACE"},
		{env: []string{"PRESENCE_MAX_USERS=0"}, name: "PRESENCE_MAX_USERS"},
		{env: []string{"STREAM_MAX_ROOMS=101"}, name: "STREAM_MAX_ROOMS"},
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

func TestRunWarnsInOpenMode(t *testing.T) {
	in := startRun(t, "REDIS_URL="+redistest.Start(t).URL())
	if log := in.out.String(); !strings.Contains(log, "open mode") {
		t.Fatalf("no open-mode warning in\n%s", log)
	}
}
