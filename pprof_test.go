package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPprofAddr checks that PPROF_ADDR serves the runtime profiles on a
// listener of its own, and that the API never serves them.
func TestPprofAddr(t *testing.T) {
	t.Parallel()
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		in := startRun(t)
		if resp, _ := in.request(t, http.MethodGet, "/debug/pprof/", ""); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET /debug/pprof/ on the API = %d, want 404", resp.StatusCode)
		}
		if strings.Contains(in.out.String(), "pprof_addr") {
			t.Fatalf("a pprof listener without PPROF_ADDR:\n%s", in.out)
		}
	})
	t.Run("on", func(t *testing.T) {
		t.Parallel()
		in := startRun(t, "PPROF_ADDR=127.0.0.1:0")
		m := regexp.MustCompile(`level=WARN msg="serving runtime profiles[^"]*" pprof_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(in.out.String())
		if m == nil {
			t.Fatalf("no warning naming the pprof listener in\n%s", in.out)
		}
		for path, want := range map[string]string{
			"/debug/pprof/":                  "goroutine",
			"/debug/pprof/heap?debug=1":      "heap profile",
			"/debug/pprof/cmdline":           "",
			"/debug/pprof/goroutine?debug=1": "goroutine profile",
		} {
			resp, err := http.Get("http://" + m[1] + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
				t.Fatalf("GET %s on PPROF_ADDR = %d, body without %q:\n%.300s", path, resp.StatusCode, want, body)
			}
		}
		if resp, _ := in.request(t, http.MethodGet, "/debug/pprof/", ""); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET /debug/pprof/ on the API = %d with PPROF_ADDR set, want 404", resp.StatusCode)
		}
		if err := in.stop(); err != nil {
			t.Fatalf("run: %v", err)
		}
		if _, err := http.Get("http://" + m[1] + "/debug/pprof/"); err == nil {
			t.Fatalf("the pprof listener still serves after run returned")
		}
	})
}
