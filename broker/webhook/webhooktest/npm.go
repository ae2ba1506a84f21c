// Package webhooktest checks webhook requests in tests the way receivers
// do: with the standardwebhooks npm package, not with roomcast's code.
package webhooktest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Request is a webhook request as a receiver got it.
type Request struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
	Body      string `json:"body"`
}

// VerifyWithNPM verifies every request with the standardwebhooks npm
// package (api/client/ts/verify-webhooks.mjs) and fails the test at the
// first that does not verify. The package's check of the timestamp allows
// 5 minutes: verify soon after receiving. Without node or the package
// (`npm ci` in api/client/ts) the test is skipped, except under CI=true,
// where it fails.
func VerifyWithNPM(tb testing.TB, secret string, reqs []Request) {
	tb.Helper()
	dir := tsDir(tb)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		missing(tb, "the standardwebhooks npm package (npm ci in api/client/ts)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing(tb, "node")
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, r := range reqs {
		if err := enc.Encode(struct {
			Secret string `json:"secret"`
			Request
		}{secret, r}); err != nil {
			tb.Fatal(err)
		}
	}
	cmd := exec.Command(node, "verify-webhooks.mjs")
	cmd.Dir = dir
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("standardwebhooks: %v: %s", err, stderr.String())
	}
	if want := "verified " + strconv.Itoa(len(reqs)); strings.TrimSpace(string(out)) != want {
		tb.Fatalf("standardwebhooks said %q, want %q", out, want)
	}
}

func missing(tb testing.TB, what string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is needed", what)
	}
	tb.Skipf("%s is needed", what)
}

// tsDir is api/client/ts of the module the test runs in.
func tsDir(tb testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "api", "client", "ts")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
