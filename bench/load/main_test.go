package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLocalURLAcceptsOnlyLoopbackHTTPOrHTTPS(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // "" when refused
	}{
		{raw: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{raw: "http://127.0.0.1:8080/base/?q=1#f", want: "http://127.0.0.1:8080/base"},
		{raw: "http://localhost:8080"},
		{raw: "http://10.0.0.1:8080"},
		{raw: "http://192.168.1.5"},
		{raw: "https://127.0.0.1:8443", want: "https://127.0.0.1:8443"},
		{raw: "https://localhost:8443"},
		{raw: "ftp://127.0.0.1:8080"},
		{raw: "http://user:pw@127.0.0.1:8080"},
		{raw: "http://127.0.0.1.example.com"},
		{raw: "127.0.0.1:8080"},
	} {
		u, err := localURL(tc.raw)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("localURL(%q) = %v, want refused", tc.raw, u)
		case tc.want != "" && err != nil:
			t.Errorf("localURL(%q): %v, want %s", tc.raw, err, tc.want)
		case tc.want != "" && u.String() != tc.want:
			t.Errorf("localURL(%q) = %s, want %s", tc.raw, u, tc.want)
		}
	}
}

func TestPresetsParseAndYieldToExplicitFlags(t *testing.T) {
	for _, name := range presetNames() {
		cfg, err := parseFlags([]string{"-preset", name, "-redis-addr", "127.0.0.1:6400"})
		if err != nil {
			t.Fatalf("-preset %s: %v", name, err)
		}
		if cfg.streams == 0 || cfg.rooms == 0 {
			t.Fatalf("-preset %s: %d streams over %d rooms", name, cfg.streams, cfg.rooms)
		}
	}
	cfg, err := parseFlags([]string{"-preset", "storm", "-streams", "200", "-rooms", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.streams != 200 || cfg.rooms != 10 || cfg.behind != 50 || cfg.rate != 500 {
		t.Fatalf("storm at small scale: %+v", cfg)
	}
	if _, err := parseFlags([]string{"-preset", "nope"}); err == nil {
		t.Fatal("-preset nope accepted")
	}
	if _, err := parseFlags([]string{"-redis-addr", "10.0.0.1:6379"}); err == nil {
		t.Fatal("-redis-addr 10.0.0.1:6379 accepted")
	}
}

func TestProtocolFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the protocol, or "" when refused
	}{
		{args: nil, want: "HTTP/1.1"},
		{args: []string{"-url", "https://127.0.0.1:8443", "-insecure"}, want: "HTTP/1.1 over TLS"},
		{args: []string{"-url", "https://127.0.0.1:8443", "-h2", "-insecure"}, want: "HTTP/2 over TLS"},
		{args: []string{"-url", "https://127.0.0.1:8443", "-h2", "-streams-per-conn", "1"}, want: "HTTP/2 over TLS"},
		{args: []string{"-h2"}},
		{args: []string{"-streams-per-conn", "6"}},
		{args: []string{"-url", "https://127.0.0.1:8443", "-h2", "-streams-per-conn", "-1"}},
		{args: []string{"-url", "https://127.0.0.1:8443", "-stalled", "1", "-streams", "10"}},
	} {
		cfg, err := parseFlags(tc.args)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("parseFlags(%q) accepted, want refused", tc.args)
		case tc.want != "" && err != nil:
			t.Errorf("parseFlags(%q): %v", tc.args, err)
		case tc.want != "" && cfg.protocol() != tc.want:
			t.Errorf("parseFlags(%q): protocol %s, want %s", tc.args, cfg.protocol(), tc.want)
		}
	}
}

// TestPostScriptCallGivesEveryArgument checks the redis-benchmark call of
// the publish preset against the post script itself: a call short of an
// ARGV makes the script fail in Redis, and redis-benchmark with it.
func TestPostScriptCallGivesEveryArgument(t *testing.T) {
	source, err := os.ReadFile("../../redisscripts/post_message.lua")
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, m := range regexp.MustCompile(`ARGV\[(\d+)\]`).FindAllStringSubmatch(string(source), -1) {
		n, _ := strconv.Atoi(m[1])
		want = max(want, n)
	}
	call := postScriptCall("sha", 200)
	numKeys, err := strconv.Atoi(call[2])
	if err != nil {
		t.Fatalf("numkeys %q: %v", call[2], err)
	}
	if got := len(call) - 3 - numKeys; got != want {
		t.Fatalf("the call gives %d ARGV, the script reads %d", got, want)
	}
}
