package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"roomcast/redisscripts/redistest"
)

// TestBehindNginx runs Debian's nginx with broker/README.md's configuration in
// front of two roomcast instances on one Redis: streams, posts, resuming on
// the other instance, and per-client limits that see the addresses the
// clients connected to nginx from (127.0.0.2 and 127.0.0.3).
func TestBehindNginx(t *testing.T) {
	r := redistest.Start(t)
	env := []string{"REDIS_URL=" + r.URL(), "TRUSTED_PROXIES=127.0.0.1", "POST_RATE=0.001", "POST_BURST=10",
		"MAX_STREAMS_PER_CLIENT=2", "HEARTBEAT_INTERVAL=1s"}
	upstreams := []*instance{startRun(t, env...), startRun(t, env...)}
	proxyURL := startNginx(t, upstreams[0].url, upstreams[1].url)
	client := func(from string) *instance { return viaNginx(proxyURL, from) }

	t.Run("resume across instances", func(t *testing.T) {
		ann, bob := client("127.0.0.2"), client("127.0.0.3")
		// Round robin puts successive streams on alternate instances; each
		// resumes after the last id it saw, and first gets the message
		// posted while no stream was open.
		var last, missed string
		for i := range 4 {
			path := "/rooms/nx/stream"
			if last != "" {
				path += "?last_event_id=" + last
			}
			s := ann.openLines(t, path)
			if line, _ := s.next(t); !strings.HasPrefix(line, "retry: ") {
				t.Fatalf("stream %d began with %q", i, line)
			}
			if missed != "" {
				wantEvent(t, s, missed)
			}
			last = postedID(t, bob, "nx", fmt.Sprint("live ", i))
			wantEvent(t, s, last)
			s.close()
			missed = postedID(t, bob, "nx", fmt.Sprint("while away ", i))
		}
		for i, u := range upstreams {
			if !strings.Contains(u.out.String(), "path=/rooms/nx/stream") {
				t.Fatalf("instance %d served no stream: nginx did not spread them", i)
			}
		}
	})

	t.Run("post limit per client address", func(t *testing.T) {
		carol, dave := client("127.0.0.4"), client("127.0.0.5")
		for i := range 10 {
			carol.postMessage(t, "limits", fmt.Sprint("burst ", i))
		}
		for _, xff := range []string{"", "127.0.0.5"} { // a forged header changes nothing
			resp, body := carol.request(t, http.MethodPost, "/rooms/limits/messages", `{"text":"over"}`,
				"Content-Type", "application/json", "X-Forwarded-For", xff)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("carol's 11th post (X-Forwarded-For %q): %d %s, want 429", xff, resp.StatusCode, body)
			}
		}
		dave.postMessage(t, "limits", "dave has a limit of his own")
	})

	t.Run("stream limit per client address", func(t *testing.T) {
		erin, frank := client("127.0.0.6"), client("127.0.0.7")
		// Two per client and instance: four streams fill both instances.
		for range 4 {
			s := erin.openLines(t, "/rooms/streams/stream")
			if line, _ := s.next(t); !strings.HasPrefix(line, "retry: ") {
				t.Fatalf("erin's stream began with %q", line)
			}
		}
		resp, body := erin.request(t, http.MethodGet, "/rooms/streams/stream", "")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("erin's 5th stream: %d %s, want 429", resp.StatusCode, body)
		}
		s := frank.openLines(t, "/rooms/streams/stream")
		if line, _ := s.next(t); !strings.HasPrefix(line, "retry: ") {
			t.Fatalf("frank's stream began with %q", line)
		}
	})
}

// postedID posts text and returns the stored message's id.
func postedID(t *testing.T, in *instance, room, text string) string {
	t.Helper()
	var m struct{ ID string }
	if err := json.Unmarshal(in.postMessage(t, room, text), &m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// wantEvent reads the next event of s, skipping comments, and checks that
// it is the message id.
func wantEvent(t *testing.T, s *lineStream, id string) {
	t.Helper()
	for _, want := range []string{"id: " + id, "event: message", "data: "} {
		line, _ := s.next(t)
		for strings.HasPrefix(line, ":") {
			line, _ = s.next(t)
		}
		if !strings.HasPrefix(line, want) {
			t.Fatalf("stream line %q, want %q", line, want)
		}
	}
}

// viaNginx is an instance whose requests go to nginx from the loopback
// address from. Its answers are not checked against openapi.yaml: nginx
// consumes X-Accel-Buffering, which it is addressed to.
func viaNginx(url, from string) *instance {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext
	return &instance{url: url, client: &http.Client{Transport: tr}, out: &syncBuffer{}}
}

// deployNginx is the nginx configuration broker/README.md recommends.
func deployNginx(t *testing.T) string {
	t.Helper()
	deploy, err := os.ReadFile("broker/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```nginx\n(.*?)```").FindSubmatch(deploy)
	if m == nil {
		t.Fatal("broker/README.md has no nginx configuration")
	}
	return string(m[1])
}

// startNginx runs nginx in the foreground with broker/README.md's configuration,
// its upstream servers replaced by upstreams, on a free loopback port; it
// returns nginx's URL and stops nginx when the test ends.
func startNginx(t *testing.T, upstreams ...string) string {
	t.Helper()
	redistest.SkipIfShort(t, "runs nginx")
	path, err := exec.LookPath("nginx")
	if err != nil {
		path = "/usr/sbin/nginx"
		if _, err := os.Stat(path); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("nginx is required under CI=true")
			}
			t.Skip("nginx not installed")
		}
	}
	site := deployNginx(t)
	servers := regexp.MustCompile(`(?m)^\s*server \d+\.\d+\.\d+\.\d+:\d+;\n`)
	if n := len(servers.FindAllString(site, -1)); n != len(upstreams) {
		t.Fatalf("broker/README.md's nginx configuration names %d upstream servers, want %d", n, len(upstreams))
	}
	i := 0
	site = servers.ReplaceAllStringFunc(site, func(string) string {
		i++
		return "    server " + strings.TrimPrefix(upstreams[i-1], "http://") + ";\n"
	})
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		port, err := freeLoopbackPort()
		if err != nil {
			t.Fatal(err)
		}
		listen := regexp.MustCompile(`listen 80;`)
		if !listen.MatchString(site) {
			t.Fatal("broker/README.md's nginx configuration does not listen on port 80")
		}
		conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s}
`, dir, listen.ReplaceAllString(site, "listen 127.0.0.1:"+strconv.Itoa(port)+";"))
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(path, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nginx: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		stop := func() { _ = cmd.Process.Signal(os.Interrupt); <-done }
		url := "http://127.0.0.1:" + strconv.Itoa(port)
		if awaitNginx(url, done) {
			t.Cleanup(stop)
			return url
		}
		stop()
		if attempt == 5 {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not come up on %s:\n%s", url, log)
		}
	}
}

// awaitNginx polls url's /healthz until nginx answers it (with its Server
// header, so that it is not some other process on the port) or exits.
func awaitNginx(url string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get("Server"), "nginx") && resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// TestWarnsOnceAboutUntrustedForwarding checks that X-Forwarded-For from a
// peer outside TRUSTED_PROXIES is reported once per process, since every
// client behind that proxy then shares the per-client limits.
func TestWarnsOnceAboutUntrustedForwarding(t *testing.T) {
	const warning = "X-Forwarded-For from a peer not in TRUSTED_PROXIES"
	for _, tt := range []struct {
		name  string
		env   []string
		warns int
	}{
		{name: "untrusted", warns: 1},
		{name: "trusted", env: []string{"TRUSTED_PROXIES=127.0.0.1"}, warns: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := startRun(t, tt.env...)
			for i := range 3 {
				resp, body := in.request(t, http.MethodPost, "/rooms/r/messages", `{"text":"hi"}`,
					"Content-Type", "application/json", "X-Forwarded-For", fmt.Sprint("192.0.2.", i))
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("POST: %d %s", resp.StatusCode, body)
				}
			}
			if got := strings.Count(in.out.String(), warning); got != tt.warns {
				t.Fatalf("%d warnings about X-Forwarded-For, want %d:\n%s", got, tt.warns, in.out)
			}
		})
	}
}
