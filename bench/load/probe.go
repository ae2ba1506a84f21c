package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// scrapeMetric reads one unlabelled sample (e.g. go_goroutines) from the
// server's Prometheus endpoint.
func scrapeMetric(ctx context.Context, client *http.Client, base, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("scrape: no sample %s in /metrics", name)
}

// redisProbe reads counters of the Redis the server uses.
type redisProbe struct{ rdb *redis.Client }

func newRedisProbe(addr string) *redisProbe {
	return &redisProbe{redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1})}
}

func (p *redisProbe) close() { p.rdb.Close() }

// info returns the fields of an INFO section.
func (p *redisProbe) info(ctx context.Context, section string) (map[string]string, error) {
	text, err := p.rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO %s: %w", section, err)
	}
	fields := map[string]string{}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// clients is Redis's connected_clients, this probe's connection included.
func (p *redisProbe) clients(ctx context.Context) (int, error) {
	f, err := p.info(ctx, "clients")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f["connected_clients"])
}

// scriptCalls counts the script runs Redis executed: EVALSHA calls that did
// not fail (a NOSCRIPT reply did not run the script) plus EVAL calls.
func (p *redisProbe) scriptCalls(ctx context.Context) (int64, error) {
	f, err := p.info(ctx, "commandstats")
	if err != nil {
		return 0, err
	}
	stat := func(cmd, field string) int64 {
		for part := range strings.SplitSeq(f["cmdstat_"+cmd], ",") {
			if v, ok := strings.CutPrefix(part, field+"="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	return stat("evalsha", "calls") - stat("evalsha", "failed_calls") + stat("eval", "calls"), nil
}

// benchmarkScript runs redis-benchmark with the post script, as the server
// calls it (4 keys of one room with a full history, the message arguments,
// no idempotency key), on a channel nobody listens to, over clients
// connections, and returns its requests per second. The script runs with
// the helper files of its directory in front, as the server runs it.
func (p *redisProbe) benchmarkScript(ctx context.Context, addr, scriptFile string, clients, requests, size int) (float64, error) {
	source, err := os.ReadFile(scriptFile)
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: read the post script: %w", err)
	}
	// The helper files redisscripts prepends to the post script, in its
	// order (post_message.go).
	var lib []byte
	for _, helper := range []string{"read_state.lua", "clock.lua", "idempotency.lua"} {
		part, err := os.ReadFile(filepath.Join(filepath.Dir(scriptFile), helper))
		if err != nil {
			return 0, fmt.Errorf("redis-benchmark: read the post script's helpers: %w", err)
		}
		lib = append(lib, part...)
	}
	sha, err := p.rdb.ScriptLoad(ctx, string(lib)+string(source)).Result()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: load the post script: %w", err)
	}
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := append([]string{"-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", strconv.Itoa(requests), "--csv"},
		postScriptCall(sha, size)...)
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("redis-benchmark: %w", err)
	}
	// The CSV's first field, the command, is not escaped; count from the
	// end: rps is the seventh field from the last.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cols := strings.Split(lines[len(lines)-1], ",")
	if len(lines) < 2 || len(cols) < 8 {
		return 0, fmt.Errorf("redis-benchmark: unexpected output %q", out)
	}
	return strconv.ParseFloat(strings.Trim(cols[len(cols)-7], `"`), 64)
}

// postScriptCall is the EVALSHA of the post script as the server sends it
// for a post without an idempotency key: the room's meta, history, read,
// live, log, settings and slow keys and its bucket's room index, then
// every ARGV of redisscripts/post_message.lua in its order.
func postScriptCall(sha string, size int) []string {
	fields := `"user":"load","text":"lt:1764000000000000000:1:` + strings.Repeat("x", size-24) + `"`
	return []string{"EVALSHA", sha, "8", "redisbench:{room}:meta", "redisbench:{room}:history",
		"redisbench:{room}:read", "redisbench:{room}:live", "redisbench:{room}:log",
		"redisbench:{room}:settings", "redisbench:{room}:slow:4:load", "redisbench:{room}:bucket:rooms",
		"redisbench:{room}:channel", `"room"`, fields, "1000", "86400000", "", "0", "PUBLISH", "load", "", "", "0", "", "", "room"}
}
