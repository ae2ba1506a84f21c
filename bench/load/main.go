// Command load measures a running roomcast on this machine: it opens SSE
// streams spread over rooms, posts messages at a target rate, and reports
// end-to-end latency, lost and duplicate deliveries, and the server's
// memory. It only talks to 127.0.0.1 and stops by itself: every phase is
// bounded in count and in time.
//
//	go run ./bench/load -url http://127.0.0.1:8080 -streams 1000 -rooms 10 -rate 500 -duration 10s -pid $PID
//	go run ./bench/load -url https://127.0.0.1:8443 -h2 -insecure -preset idle -pid $PID
//
// bench/README.md has the results and how they were measured.
//
// Each message's text carries the time it was sent, so that every stream
// can measure the latency of every delivery. Rooms get fresh names on each
// run, so that their sequences start with the run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of the flags: the tool must stay a bounded, local measurement.
const (
	maxStreams    = 20_000
	maxRooms      = 10_000
	maxPublishers = 64
	maxRate       = 20_000
	maxDuration   = 60 * time.Second
	maxDrain      = 30 * time.Second
	maxSettle     = 30 * time.Second
	maxDeliveries = 10_000_000 // latency samples kept in memory
	minTextSize   = 48
	maxTextSize   = 4000
	openTimeout   = 60 * time.Second
)

type config struct {
	preset     string
	url        *url.URL
	streams    int
	rooms      int
	publishers int
	rate       int
	maxRate    bool // post back to back instead of at rate
	batch      int  // post this many messages per POST /messages; 0: one per POST /rooms/{room}/messages
	duration   time.Duration
	drain      time.Duration
	settle     time.Duration
	size       int
	pid        int
	redisPID   int
	redisAddr  string // "" or 127.0.0.1:port of the Redis the server uses
	behind     int    // storm: streams resume this many messages behind
	stalled    int    // slow: extra streams that never read
	benchmark  bool   // publish: also run redis-benchmark on the post script
	script     string // the post script's source file, for -redis-benchmark
	openAtOnce int    // streams opened concurrently
	floor      floor  // CPU per delivery is also reported as a multiple of it
	floorAuto  bool   // measure the floor with bench/floor before the run
	h2         bool   // speak HTTP/2 to an https:// -url
	insecure   bool   // accept any certificate of an https:// -url
	// streamsPerConn bounds the streams on one HTTP/2 connection; 0: as
	// many as the server allows.
	streamsPerConn int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg)
	rep.print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	if !rep.clean() {
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	rawURL := fs.String("url", "http://127.0.0.1:8080", "roomcast base URL; only http:// or https:// on 127.0.0.1 is accepted")
	cfg := config{}
	fs.IntVar(&cfg.streams, "streams", 1000, "SSE streams to open")
	fs.IntVar(&cfg.rooms, "rooms", 10, "rooms the streams and messages are spread over")
	fs.IntVar(&cfg.publishers, "publishers", 16, "concurrent posting clients")
	fs.IntVar(&cfg.rate, "rate", 500, "messages per second over all publishers; 0 keeps the streams idle")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to post (or, at -rate 0, to hold the idle streams)")
	fs.DurationVar(&cfg.drain, "drain", 5*time.Second, "longest wait for deliveries after the last post")
	fs.DurationVar(&cfg.settle, "settle", 2*time.Second, "wait after opening the streams before reading the server's memory")
	fs.IntVar(&cfg.size, "size", 200, "bytes of message text")
	fs.IntVar(&cfg.pid, "pid", 0, "process id of the server, to report its resident memory (VmRSS) and CPU time")
	fs.IntVar(&cfg.redisPID, "redis-pid", 0, "process id of redis-server, to report its CPU time too")
	fs.StringVar(&cfg.preset, "preset", "", "a named scenario: "+strings.Join(presetNames(), ", ")+
		"; flags given explicitly override its values")
	fs.IntVar(&cfg.batch, "batch", 0, "post this many messages per request through POST /messages (a server API key's batch; the server must run in open mode); 0: single posts")
	fs.BoolVar(&cfg.maxRate, "max-rate", false, "post as fast as the server answers instead of at -rate")
	fs.StringVar(&cfg.redisAddr, "redis-addr", "", "127.0.0.1:port of the server's Redis, to report its clients and command counts")
	fs.IntVar(&cfg.behind, "resume-behind", 0, "storm: post this many messages per room first, then open every stream at once resuming that far behind while posting continues at -rate")
	fs.IntVar(&cfg.stalled, "stalled", 0, "slow: extra streams (spread over the rooms) that never read")
	fs.BoolVar(&cfg.benchmark, "redis-benchmark", false, "also run redis-benchmark with the same post script at -publishers connections (needs -redis-addr)")
	fs.StringVar(&cfg.script, "script", "redisscripts/post_message.lua", "the post script, for -redis-benchmark")
	fs.IntVar(&cfg.openAtOnce, "open-at-once", 32, "streams opened concurrently")
	rawFloor := fs.String("floor", "", "report the server's CPU per delivery also as a multiple of this floor: "+
		"bench/floor's µs of CPU per write, or auto to run bench/floor before the run")
	fs.BoolVar(&cfg.h2, "h2", false, "speak HTTP/2 (an https:// -url, roomcast with TLS_CERT_FILE): streams share connections; without it https:// is HTTP/1.1 over TLS")
	fs.BoolVar(&cfg.insecure, "insecure", false, "accept any certificate of an https:// -url, such as a self-signed one")
	fs.IntVar(&cfg.streamsPerConn, "streams-per-conn", 0, "with -h2, at most this many streams per connection (1: a connection per stream, as one tab per browser); 0: as many as the server allows")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.preset != "" {
		explicit := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
		if err := applyPreset(fs, cfg.preset, explicit); err != nil {
			return cfg, err
		}
	}
	u, err := localURL(*rawURL)
	if err != nil {
		return cfg, err
	}
	cfg.url = u
	if cfg.floor.us, cfg.floorAuto, err = parseFloor(*rawFloor); err != nil {
		return cfg, err
	}
	cfg.floor.source = "given with -floor"
	checks := []struct {
		ok   bool
		what string
	}{
		{cfg.streams >= 0 && cfg.streams <= maxStreams, fmt.Sprintf("-streams must be 0 to %d", maxStreams)},
		{cfg.rooms >= 1 && cfg.rooms <= maxRooms, fmt.Sprintf("-rooms must be 1 to %d", maxRooms)},
		{cfg.publishers >= 1 && cfg.publishers <= maxPublishers, fmt.Sprintf("-publishers must be 1 to %d", maxPublishers)},
		{cfg.rate >= 0 && cfg.rate <= maxRate, fmt.Sprintf("-rate must be 0 to %d", maxRate)},
		{cfg.duration > 0 && cfg.duration <= maxDuration, fmt.Sprintf("-duration must be positive and at most %v", maxDuration)},
		{cfg.drain > 0 && cfg.drain <= maxDrain, fmt.Sprintf("-drain must be positive and at most %v", maxDrain)},
		{cfg.settle >= 0 && cfg.settle <= maxSettle, fmt.Sprintf("-settle must be 0 to %v", maxSettle)},
		{cfg.size >= minTextSize && cfg.size <= maxTextSize, fmt.Sprintf("-size must be %d to %d", minTextSize, maxTextSize)},
		{cfg.pid >= 0, "-pid must be a process id"},
		{cfg.redisPID >= 0, "-redis-pid must be a process id"},
		{cfg.behind >= 0 && cfg.behind <= 1000, "-resume-behind must be 0 to 1000"},
		{cfg.stalled >= 0 && cfg.stalled <= maxStreams-cfg.streams, fmt.Sprintf("-stalled must be 0 to %d less -streams", maxStreams)},
		{cfg.openAtOnce >= 1 && cfg.openAtOnce <= 2000, "-open-at-once must be 1 to 2000"},
		{cfg.behind == 0 || cfg.rate > 0 && !cfg.maxRate, "-resume-behind needs a -rate and no -max-rate"},
		{!cfg.benchmark || cfg.redisAddr != "", "-redis-benchmark needs -redis-addr"},
		{!cfg.h2 || u.Scheme == "https", "-h2 needs an https:// -url"},
		{cfg.streamsPerConn >= 0 && (cfg.streamsPerConn == 0 || cfg.h2), "-streams-per-conn needs -h2 and must be 0 or more"},
		{cfg.stalled == 0 || u.Scheme == "http", "-stalled needs an http:// -url"},
		{cfg.batch >= 0 && cfg.batch <= 1000, "-batch must be 0 to 1000"},
		{cfg.batch == 0 || cfg.behind == 0, "-batch and -resume-behind do not go together"},
	}
	for _, c := range checks {
		if !c.ok {
			return cfg, errors.New(c.what)
		}
	}
	if cfg.redisAddr != "" {
		if host, _, err := net.SplitHostPort(cfg.redisAddr); err != nil || host != "127.0.0.1" {
			return cfg, fmt.Errorf("-redis-addr %q: only 127.0.0.1:port is allowed", cfg.redisAddr)
		}
	}
	if d := cfg.expectedDeliveries(); d > maxDeliveries {
		return cfg, fmt.Errorf("the run would make about %d deliveries; at most %d are measured: lower -rate, -duration or -streams, or raise -rooms", d, maxDeliveries)
	}
	return cfg, nil
}

// expectedDeliveries is how many deliveries the run makes if every post
// succeeds.
func (c config) expectedDeliveries() int64 {
	rate := c.rate
	if c.maxRate {
		rate = maxRate // publish stops there
	}
	posts := int64(rate)*int64(c.duration.Seconds()+1) + int64(c.behind+1)*int64(c.rooms)
	return posts * int64((c.streams+c.rooms-1)/c.rooms)
}

// localURL parses the server's base URL and refuses anything but HTTP or
// HTTPS on 127.0.0.1: the tool generates load and must not aim it elsewhere.
func localURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() != "127.0.0.1" || u.User != nil {
		return nil, fmt.Errorf("-url %q: only http://127.0.0.1[:port] or https://127.0.0.1[:port] is allowed", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// raiseFileLimit makes sure the process may open need descriptors, raising
// its soft limit up to the hard one if it must. It returns the limit now in
// force.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return lim.Cur, nil
	}
	if lim.Max < need {
		return lim.Cur, fmt.Errorf("need %d open files, the hard limit is %d: raise it (ulimit -Hn) first", need, lim.Max)
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raise the open-file limit to %d: %w", need, err)
	}
	return need, nil
}

// readRSS returns the resident memory of process pid in bytes, from
// /proc/PID/status.
func readRSS(pid int) (int64, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: VmRSS %q: %w", pid, rest, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("process %d: no VmRSS in /proc status", pid)
}

// readWriteCalls returns how many write system calls (write, writev, …)
// process pid has made, from the syscw line of /proc/PID/io.
func readWriteCalls(pid int) (int64, error) {
	counters, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, fmt.Errorf("read write calls of process %d: %w", pid, err)
	}
	n, err := procCounter(string(counters), "syscw")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return n, nil
}

// procCounter reads counter name from text of "name: value" lines, as in
// /proc/PID/io.
func procCounter(text, name string) (int64, error) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", name, strings.TrimSpace(rest), err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s counter", name)
}

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ), 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time a process used, in user space and in the kernel.
type cpuTime struct{ user, system time.Duration }

func (c cpuTime) sub(d cpuTime) cpuTime { return cpuTime{c.user - d.user, c.system - d.system} }

// readCPU returns the CPU time process pid has used, from /proc/PID/stat.
func readCPU(pid int) (cpuTime, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTime{}, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name, field 2, may hold spaces; it ends at the last ')'.
	end := strings.LastIndexByte(string(stat), ')')
	fields := strings.Fields(string(stat[end+1:]))
	if end < 0 || len(fields) < 13 {
		return cpuTime{}, fmt.Errorf("process %d: unexpected /proc stat", pid)
	}
	var ticks [2]int64
	for i, f := range fields[11:13] { // utime and stime, fields 14 and 15
		if ticks[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return cpuTime{}, fmt.Errorf("process %d: CPU time %q: %w", pid, f, err)
		}
	}
	return cpuTime{time.Duration(ticks[0]) * clockTick, time.Duration(ticks[1]) * clockTick}, nil
}

// ownCPU returns the CPU time this process has used.
func ownCPU() cpuTime {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTime{}
	}
	return cpuTime{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}
