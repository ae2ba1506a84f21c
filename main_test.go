package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"roomcast/api/contracttest"
	"roomcast/redisscripts/redistest"
)

// checkedClient sends the tests' requests and checks each exchange against
// openapi.yaml.
var checkedClient = contracttest.Client("openapi.yaml")

func TestMain(m *testing.M) {
	// startProcess runs this test binary again as a real roomcast process,
	// which tests can send signals to.
	if os.Getenv("ROOMCAST_AS_PROCESS") == "1" {
		os.Exit(runMain(nil))
	}
	goleak.VerifyTestMain(m)
}

func TestRunEmbeddedRedis(t *testing.T) {
	in := startRun(t)
	checkServes(t, in)
	if out := in.out.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "REDIS_URL is not set") {
		t.Fatalf("no warning about the embedded Redis in the log:\n%s", out)
	}

	open := in.openLines(t, "/rooms/lobby/stream")
	open.next(t)
	start := time.Now()
	if err := in.stop(); err != nil {
		t.Fatalf("run after cancellation: %v, want nil", err)
	}
	t.Logf("run returned %v after cancellation with a stream open", time.Since(start))
	wantStreamClosed(t, open)
	if _, err := http.Get(in.url + "/healthz"); err == nil {
		t.Fatalf("still serving after run returned")
	}
}

func TestRunWithRedisURL(t *testing.T) {
	redis := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+redis.URL(), "KEY_PREFIX=test7:", "LOG_FORMAT=json")
	checkServes(t, in)
	keys, err := redis.Client().Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	rooms := 0
	for _, k := range keys {
		if !strings.HasPrefix(k, "test7:") {
			t.Errorf("key %q does not start with KEY_PREFIX test7:", k)
		}
		if strings.HasPrefix(k, "test7:{lobby}:") {
			rooms++
		}
	}
	if rooms == 0 {
		t.Fatalf("no key of room lobby under KEY_PREFIX with its hash tag in %q", keys)
	}
	if strings.Contains(in.out.String(), "REDIS_URL is not set") {
		t.Fatalf("warned about the embedded Redis although REDIS_URL is set")
	}
	if err := in.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// One JSON log line per request, with its status and duration.
	posts := 0
	for line := range strings.SplitSeq(strings.TrimSpace(in.out.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if entry["msg"] == "request" && entry["method"] == "POST" {
			posts++
			if entry["status"] != float64(201) || entry["duration"] == nil {
				t.Fatalf("request log line %s lacks status 201 or duration", line)
			}
		}
	}
	if posts != 1 {
		t.Fatalf("%d request log lines for 1 POST", posts)
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		env  string   // NAME=value
		more []string // other settings the case needs
		want string   // the variable the error must name; NAME if empty
		item string   // what the error must quote as the offending item; the value if empty
	}{
		{env: "HISTORY_MAX=x"},
		{env: "HISTORY_MAX=0"},
		{env: "HISTORY_MAX=-3"},
		{env: "HISTORY_MAX=1000001"},
		{env: "HISTORY_MAX=99999999999999999999"},
		{env: "MAX_MESSAGE_BYTES=0"},
		{env: "MAX_MESSAGE_BYTES=4k"},
		{env: "CLIENT_BUFFER=0"},
		{env: "CLIENT_BUFFER=1.5"},
		{env: "REDIS_TIMEOUT=abc"},
		{env: "REDIS_TIMEOUT=5"},
		{env: "REDIS_TIMEOUT=0s"},
		{env: "REDIS_TIMEOUT=-1s"},
		{env: "REDIS_CLUSTER=maybe"},
		{env: "IDEMPOTENCY_TTL=10ms"},
		{env: "HEARTBEAT_INTERVAL=1ms"},
		{env: "HEARTBEAT_INTERVAL=often"},
		{env: "SSE_RETRY=0s"},
		{env: "STREAM_WRITE_TIMEOUT=0s"},
		{env: "DELIVERY_CHECK_INTERVAL=1ms"},
		{env: "SHUTDOWN_TIMEOUT=0s"},
		{env: "LOG_LEVEL=loud"},
		{env: "LOG_FORMAT=xml"},
		{env: "PPROF_ADDR=:6060"},
		{env: "PPROF_ADDR=0.0.0.0:6060"},
		{env: "PPROF_ADDR=debug"},
		{env: "KEY_PREFIX={x}"},
		{env: "KEY_PREFIX=a}"},
		{env: "ADDR=nowhere"},
		{env: "ADDR=:99999"},
		{env: "REDIS_URL=http://127.0.0.1:6379", item: "http"},
		{env: "REDIS_URL=redis://127.0.0.1:6379/notadb", item: "notadb"},
		{env: "REDIS_URL=redis://:s3cret@127.0.0.1:bad", item: "bad"},
		{env: "REDIS_CLUSTER=true", more: []string{"REDIS_URL=http://127.0.0.1:6379"}, want: "REDIS_URL", item: "http"},
		{env: "POST_RATE=abc"},
		{env: "POST_RATE=1,5"},
		{env: "POST_BURST=lots"},
		{env: "MAX_STREAMS=1e3"},
		{env: "LOG_LEVEL=verbose"},
		{env: "JWT_LEEWAY=30"},
		{env: "IDEMPOTENCY_TTL=1 day"},
		{env: "ROOM_TTL=forever"},
		{env: "BODY_READ_TIMEOUT=-"},
		{env: "TRUSTED_PROXIES=10.0.0.0/8,proxy.local", item: `"proxy.local"`},
		{env: "TRUSTED_PROXIES=10.0.0.0/33", item: `"10.0.0.0/33"`},
		{env: "CORS_ORIGINS=https://a.example,*", item: `"*"`},
		{env: "CORS_ORIGINS=https://chat.example/app", item: `"https://chat.example/app"`},
		{env: "JWT_DEFAULT_ROOMS=read:foo,bar", more: []string{"JWT_SECRET=" + testJWTSecret}, item: `"bar"`},
		{env: "JWT_DEFAULT_ROOMS=read:foo,write:a b", more: []string{"JWT_SECRET=" + testJWTSecret}, item: `"write:a b"`},
		{env: "JWT_DEFAULT_ROOMS=admin:*", more: []string{"JWT_SECRET=" + testJWTSecret}, item: `"admin:*"`},
		{env: "WEBHOOK_URL=ftp://user:s3cret@hooks.example", item: "http://"},
		{env: "WEBHOOK_URL=/hooks", item: "http://"},
		{env: "WEBHOOK_URL=http://hooks.example", want: "WEBHOOK_SECRET", item: "not set"},
		{env: "WEBHOOK_SECRET=s3cret", more: []string{"WEBHOOK_URL=http://hooks.example"}, item: `"whsec_"`},
		{env: "WEBHOOK_SECRET=whsec_czNjcmV0", more: []string{"WEBHOOK_URL=http://hooks.example"}, item: "6 bytes"},
		{env: "WEBHOOK_EVENTS=message.created,message.sent", more: []string{"WEBHOOK_URL=http://hooks.example",
			"WEBHOOK_SECRET=" + webhookSecret}, item: `"message.sent"`},
		{env: "WEBHOOK_MAX_AGE=0s"},
		{env: "WEBHOOK_LEASE=500ms"},
		{env: "WEBHOOK_TIMEOUT=6s"},
		{env: "WEBHOOK_TIMEOUT=2s", more: []string{"WEBHOOK_LEASE=3s"}},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			name, value, _ := strings.Cut(tt.env, "=")
			if tt.want != "" {
				name = tt.want
			}
			environ := append([]string{"ADDR=127.0.0.1:0", tt.env}, tt.more...)
			start := time.Now()
			err := run(t.Context(), nil, environ, io.Discard, func(string) { t.Errorf("listening with %s", tt.env) })
			if err == nil {
				t.Fatalf("run accepted %s", tt.env)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("run took %v to refuse %s", d, tt.env)
			}
			if !errors.As(err, new(configError)) {
				t.Fatalf("run with %s = %v, want a configError (exit status 2)", tt.env, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, name+":") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q is not one line starting with %s", msg, name)
			}
			if strings.Contains(tt.env, "s3cret") && strings.Contains(msg, "s3cret") {
				t.Fatalf("error %q shows a secret", msg)
			}
			item := tt.item
			if item == "" {
				item = strconv.Quote(value)
			}
			if !strings.Contains(msg, item) {
				t.Fatalf("error %q does not name the offending item %s", msg, item)
			}
			for _, internal := range []string{"strconv.", "slog:", "time:", "parsing ", "reflect", "redis:", "env:"} {
				if strings.Contains(msg, internal) {
					t.Fatalf("error %q speaks Go (%q)", msg, internal)
				}
			}
		})
	}
	if err := run(t.Context(), []string{"serve"}, nil, io.Discard, nil); !errors.As(err, new(configError)) {
		t.Fatalf("run with an argument = %v, want a configError", err)
	}
}

// TestRunWarnsAboutIneffectiveSettings checks that a setting without
// effect is a warning at start that names it.
func TestRunWarnsAboutIneffectiveSettings(t *testing.T) {
	in := startRun(t, "JWT_ISSUER=https://login.example", "JWT_DEFAULT_ROOMS=read:*", "POST_RATE=0", "POST_BURST=3",
		"WEBHOOK_SECRET="+webhookSecret, "WEBHOOK_EVENTS=message.created", "REVOCATION_TTL=1h")
	log := in.out.String()
	for _, name := range []string{"JWT_ISSUER", "JWT_DEFAULT_ROOMS", "POST_BURST", "WEBHOOK_SECRET", "WEBHOOK_EVENTS", "REVOCATION_TTL"} {
		if !strings.Contains(log, "level=WARN msg=\""+name+" is set but has no effect") {
			t.Errorf("no warning that %s has no effect in\n%s", name, log)
		}
	}
	if strings.Contains(log, "JWT_AUDIENCE") {
		t.Errorf("warned about JWT_AUDIENCE, which is not set:\n%s", log)
	}
}

func TestExitStatus(t *testing.T) {
	t.Setenv("ADDR", "127.0.0.1:0")
	t.Setenv("HISTORY_MAX", "many")
	if got := runMain(nil); got != 2 {
		t.Fatalf("exit status with a bad setting = %d, want 2", got)
	}
	t.Setenv("HISTORY_MAX", "10")
	t.Setenv("REDIS_URL", "redis://:wrong-password@"+redistest.Start(t, "--requirepass", "right-password").Addr)
	t.Setenv("REDIS_TIMEOUT", "200ms")
	if got := runMain(nil); got != 1 {
		t.Fatalf("exit status with Redis refusing the password = %d, want 1", got)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	for _, flag := range []string{"-h", "-help", "--help"} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{flag}, []string{"HISTORY_MAX=x"}, &out, nil); err != nil {
			t.Fatalf("run %s: %v", flag, err)
		}
		lines := map[string]string{}
		for line := range strings.SplitSeq(out.String(), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				lines[f[0]] = line
			}
		}
		typ := reflect.TypeFor[config]()
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, def := f.Tag.Get("env"), f.Tag.Get("envDefault")
			if def == "" {
				def = `""`
			}
			line, ok := lines[name]
			if !ok || f.Tag.Get("help") == "" {
				t.Fatalf("%s: no help for %s in\n%s", flag, name, out.String())
			}
			if !strings.Contains(line, "(default "+def+")") || !strings.Contains(line, f.Tag.Get("help")) {
				t.Fatalf("%s: line %q lacks the meaning or default %s", flag, line, def)
			}
		}
		for _, name := range []string{"ADDR", "REDIS_URL", "KEY_PREFIX", "HISTORY_MAX", "MAX_MESSAGE_BYTES",
			"HEARTBEAT_INTERVAL", "CLIENT_BUFFER", "SHUTDOWN_TIMEOUT", "LOG_LEVEL"} {
			if _, ok := lines[name]; !ok {
				t.Fatalf("%s does not list %s", flag, name)
			}
		}
	}
}
