package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is what a run measured.
type report struct {
	cfg                config
	fileLimit          uint64
	filesNeeded        uint64
	opened, openFailed int
	openTime           time.Duration
	streamConns        int64 // connections the streams used
	rssBefore          int64 // bytes; 0 without -pid
	rssIdle            int64 // with every stream open, before any post
	rssEnd             int64 // after the last delivery
	// CPU time used by each process: [0] at the first post, [1] after the
	// last delivery.
	serverCPU, toolCPU, redisCPU [2]cpuTime
	serverWrites                 [2]int64 // the server's write system calls; -1 where unread
	posts                        publishResult
	expected, received           int64 // deliveries of acknowledged posts
	lost, duplicates             int64
	unacknowledged               int64 // deliveries of posts whose reply was not a success
	epochs, resets               int64
	malformed, endedEarly        int64
	earlyReasons                 map[string]int // why streams ended early
	latencies                    []int64        // sorted
	before, idle, end            snapshot       // the server at 0 streams, idle, after the posts
	rssPeak                      int64          // largest RSS seen while posting
	benchmarkRate                float64        // redis-benchmark's requests/s; 0 if not run
	storm                        stormResult
}

// snapshot is what the server and its Redis report at one moment; -1 where
// it was not read.
type snapshot struct {
	goroutines   float64 // go_goroutines of the server's /metrics
	slowDrops    float64 // roomcast_slow_client_drops_total
	redisClients int     // connected_clients of the Redis, this tool's probe included
}

// probe reads a snapshot of the server and, with -redis-addr, its Redis.
func (r *report) probe(ctx context.Context, into *snapshot) error {
	*into = snapshot{goroutines: -1, slowDrops: -1, redisClients: -1}
	client := &http.Client{Transport: r.cfg.transport(nil)}
	defer client.CloseIdleConnections()
	var err error
	if into.goroutines, err = scrapeMetric(ctx, client, r.cfg.url.String(), "go_goroutines"); err != nil {
		return err
	}
	if v, err := scrapeMetric(ctx, client, r.cfg.url.String(), "roomcast_slow_client_drops_total"); err == nil {
		into.slowDrops = v
	}
	if r.cfg.redisAddr != "" {
		p := newRedisProbe(r.cfg.redisAddr)
		defer p.close()
		if into.redisClients, err = p.clients(ctx); err != nil {
			return err
		}
	}
	return nil
}

// samplePeakRSS records the server's largest RSS every 100 ms until the
// returned func is called.
func (r *report) samplePeakRSS(ctx context.Context) (stop func()) {
	if r.cfg.pid == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := readRSS(r.cfg.pid); err == nil {
				r.rssPeak = max(r.rssPeak, rss)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// readMemory reads the server's resident memory into into; it does nothing
// without -pid.
func (r *report) readMemory(into *int64) error {
	if r.cfg.pid == 0 {
		return nil
	}
	rss, err := readRSS(r.cfg.pid)
	*into = rss
	return err
}

// readCPU records the CPU time used so far by this tool and, if their ids
// were given, by the server and redis-server, in slot i of each.
func (r *report) readCPU(i int) error {
	r.toolCPU[i] = ownCPU()
	var err error
	if r.cfg.pid != 0 {
		if r.serverCPU[i], err = readCPU(r.cfg.pid); err != nil {
			return err
		}
		// /proc/PID/io needs the server's owner or ptrace rights: optional.
		if r.serverWrites[i], err = readWriteCalls(r.cfg.pid); err != nil {
			r.serverWrites[i] = -1
		}
	}
	if r.cfg.redisPID != 0 {
		if r.redisCPU[i], err = readCPU(r.cfg.redisPID); err != nil {
			return err
		}
	}
	return nil
}

// compare matches what every stream received with the acknowledged posts of
// its room.
func (r *report) compare(streams []*stream) {
	acked := make([][]int64, r.cfg.rooms)
	epochOf := make([]string, r.cfg.rooms)
	for _, a := range r.posts.acks {
		acked[a.room] = append(acked[a.room], a.seq)
		epochOf[a.room] = a.epoch
	}
	for _, seqs := range acked {
		slices.Sort(seqs)
	}
	var samples int
	for _, s := range streams {
		samples += len(s.latencies)
	}
	r.latencies = make([]int64, 0, samples)
	for _, s := range streams {
		want := acked[s.room]
		if i, _ := slices.BinarySearch(want, s.after+1); s.after > 0 {
			want = want[i:]
		}
		r.expected += int64(len(want))
		matched := int64(0)
		if s.epoch == epochOf[s.room] || len(s.seqs) == 0 {
			matched = countCommon(want, s.seqs)
		}
		r.received += matched
		r.lost += int64(len(want)) - matched
		r.unacknowledged += int64(len(s.seqs)) - matched
		r.duplicates += int64(s.duplicates)
		r.epochs += int64(s.epochs)
		r.resets += int64(s.resets)
		r.malformed += int64(s.malformed)
		if s.early != nil {
			r.endedEarly++
			if r.earlyReasons == nil {
				r.earlyReasons = map[string]int{}
			}
			r.earlyReasons[s.early.Error()]++
		}
		r.latencies = append(r.latencies, s.latencies...)
	}
	slices.Sort(r.latencies)
}

// countCommon counts the values two ascending slices share.
func countCommon(a, b []int64) int64 {
	var n int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			n++
			i++
			j++
		}
	}
	return n
}

// clean reports whether the run saw no failure: every stream opened and
// stayed open, every post succeeded and reached every stream exactly once.
func (r *report) clean() bool {
	return r.openFailed == 0 && r.endedEarly == 0 && len(r.posts.failures) == 0 &&
		r.lost == 0 && r.duplicates == 0 && r.epochs == 0 && r.resets == 0 && r.malformed == 0 &&
		r.storm.notCaughtUp == 0
}

func (r *report) print(w io.Writer) {
	c := r.cfg
	fmt.Fprintf(w, "target          %s", c.url)
	if c.pid != 0 {
		fmt.Fprintf(w, " (pid %d)", c.pid)
	}
	fmt.Fprintf(w, "\nopen files      limit %d, needed %d\n", r.fileLimit, r.filesNeeded)
	fmt.Fprintf(w, "streams         %d of %d opened over %d rooms in %v (%.0f/s), %d failed, %d ended early\n",
		r.opened, c.streams, c.rooms, r.openTime.Round(time.Millisecond),
		float64(r.opened)/max(r.openTime.Seconds(), 1e-9), r.openFailed, r.endedEarly)
	for reason, n := range r.earlyReasons {
		fmt.Fprintf(w, "  ended early   %d × %s\n", n, reason)
	}
	fmt.Fprintf(w, "protocol        %s, %d streams on %d connections\n", c.protocol(), r.opened, r.streamConns)
	if c.pid != 0 {
		fmt.Fprintf(w, "server RSS      before %s, idle %s, end %s\n", mib(r.rssBefore), mib(r.rssIdle), mib(r.rssEnd))
		if r.opened > 0 {
			fmt.Fprintf(w, "idle streams    %+d bytes per stream ((idle - before) / %d streams)\n",
				(r.rssIdle-r.rssBefore)/int64(r.opened), r.opened)
		}
	}
	r.printProbes(w)
	if c.behind > 0 {
		r.storm.print(w)
	}
	if c.rate == 0 && !c.maxRate {
		fmt.Fprintf(w, "posts           none (-rate 0), streams held idle for %v\n", c.duration)
	} else {
		p := r.posts
		target := strconv.Itoa(c.rate) + "/s"
		if c.maxRate {
			target = "as fast as answered"
		}
		fmt.Fprintf(w, "posts           %d sent in %v (%.1f/s, target %s), %d acknowledged, %d failed\n",
			p.sent, p.elapsed.Round(time.Millisecond), float64(p.sent)/max(p.elapsed.Seconds(), 1e-9),
			target, len(p.acks), p.sent-len(p.acks))
		for reason, n := range p.failures {
			fmt.Fprintf(w, "  failed post   %d × %s\n", n, reason)
		}
		postLat := slices.Clone(p.latencies)
		slices.Sort(postLat)
		fmt.Fprintf(w, "post latency    %s\n", percentiles(postLat))
		fmt.Fprintf(w, "deliveries      expected %d, received %d, lost %d, duplicates %d\n",
			r.expected, r.received, r.lost, r.duplicates)
		fmt.Fprintf(w, "anomalies       %d of unacknowledged posts, %d of another epoch, %d resets, %d malformed\n",
			r.unacknowledged, r.epochs, r.resets, r.malformed)
		fmt.Fprintf(w, "e2e latency     %s\n", percentiles(r.latencies))
		r.printCPU(w)
		if r.rssPeak > 0 {
			fmt.Fprintf(w, "server RSS      peak while posting %s\n", mib(r.rssPeak))
		}
	}
	if r.benchmarkRate > 0 {
		rate := float64(len(r.posts.acks)) / max(r.posts.elapsed.Seconds(), 1e-9)
		fmt.Fprintf(w, "redis-benchmark %.0f requests/s of the post script at -c %d; roomcast posts/s ÷ that = %.2f\n",
			r.benchmarkRate, c.publishers, rate/r.benchmarkRate)
	}
	r.printSummary(w)
	if r.clean() {
		fmt.Fprintln(w, "result          OK")
	} else {
		fmt.Fprintln(w, "result          FAILED")
	}
}

// percentiles formats p50/p90/p99/max of sorted nanosecond samples.
func percentiles(sorted []int64) string {
	if len(sorted) == 0 {
		return "no samples"
	}
	at := func(q float64) time.Duration {
		return time.Duration(sorted[min(int(q*float64(len(sorted))), len(sorted)-1)])
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v  (%d samples)",
		round(at(0.50)), round(at(0.90)), round(at(0.99)), round(time.Duration(sorted[len(sorted)-1])), len(sorted))
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

// printSummary writes the run's key figures on one line of key=value
// pairs, which bench/run.sh collects to take medians.
func (r *report) printSummary(w io.Writer) {
	fields := []string{"preset=" + cmp.Or(r.cfg.preset, "none")}
	add := func(key string, format string, v any) { fields = append(fields, key+"="+fmt.Sprintf(format, v)) }
	add("proto", "%s", map[string]string{"HTTP/1.1": "http1", "HTTP/1.1 over TLS": "https1", "HTTP/2 over TLS": "h2"}[r.cfg.protocol()])
	add("stream_conns", "%d", r.streamConns)
	if r.cfg.pid != 0 && r.opened > 0 {
		add("rss_per_stream_B", "%d", (r.rssIdle-r.rssBefore)/int64(r.opened))
	}
	if r.before.goroutines >= 0 && r.idle.goroutines >= 0 && r.opened > 0 {
		add("goroutines_per_stream", "%.2f", (r.idle.goroutines-r.before.goroutines)/float64(r.opened))
	}
	if r.before.redisClients >= 0 && r.idle.redisClients >= 0 {
		add("redis_clients_0", "%d", r.before.redisClients)
		add("redis_clients_N", "%d", r.idle.redisClients)
	}
	server := r.serverCPU[1].sub(r.serverCPU[0])
	cpu := (server.user + server.system).Seconds() * 1e6
	if r.cfg.pid != 0 && r.received > 0 {
		add("cpu_us_per_delivery", "%.2f", cpu/float64(r.received))
		if x, ok := r.floorMultiple(server); ok {
			add("floor_us", "%.2f", r.cfg.floor.us)
			add("cpu_floor_x", "%.2f", x)
		}
		if writes, ok := r.serverWriteCalls(); ok {
			add("writes_per_delivery", "%.3f", float64(writes)/float64(r.received))
			add("cpu_us_per_write", "%.2f", cpu/float64(writes))
			if f := r.cfg.floor.us; f > 0 {
				add("cpu_write_floor_x", "%.2f", cpu/float64(writes)/f)
			}
		}
	}
	if n := len(r.posts.acks); r.cfg.pid != 0 && n > 0 {
		add("cpu_us_per_post", "%.2f", cpu/float64(n))
	}
	if n := len(r.posts.acks); n > 0 {
		add("posts_per_s", "%.0f", float64(n)/max(r.posts.elapsed.Seconds(), 1e-9))
	}
	if len(r.latencies) > 0 {
		at := func(q float64) float64 {
			return float64(r.latencies[min(int(q*float64(len(r.latencies))), len(r.latencies)-1)]) / 1e6
		}
		add("p50_ms", "%.2f", at(0.50))
		add("p99_ms", "%.2f", at(0.99))
	}
	add("lost", "%d", r.lost)
	add("dups", "%d", r.duplicates)
	if r.benchmarkRate > 0 {
		add("redis_benchmark_per_s", "%.0f", r.benchmarkRate)
		add("posts_vs_redis_benchmark", "%.3f", float64(len(r.posts.acks))/max(r.posts.elapsed.Seconds(), 1e-9)/r.benchmarkRate)
	}
	if r.cfg.behind > 0 {
		add("caught_up_s", "%.2f", r.storm.caughtUp.Seconds())
		add("not_caught_up", "%d", r.storm.notCaughtUp)
		if r.storm.historyReads >= 0 {
			add("history_reads", "%d", r.storm.historyReads)
		}
	}
	if r.before.slowDrops >= 0 && r.end.slowDrops >= 0 {
		add("slow_drops", "%.0f", r.end.slowDrops-r.before.slowDrops)
	}
	if r.rssPeak > 0 {
		add("rss_peak_MiB", "%.1f", float64(r.rssPeak)/(1<<20))
	}
	add("ok", "%v", r.clean())
	fmt.Fprintln(w, "summary         "+strings.Join(fields, " "))
}

// printProbes reports goroutines, Redis connections and slow-client drops
// before the streams, with them idle, and after the posts.
func (r *report) printProbes(w io.Writer) {
	b, i, e := r.before, r.idle, r.end
	if b.goroutines >= 0 && i.goroutines >= 0 && r.opened > 0 {
		fmt.Fprintf(w, "goroutines      before %.0f, idle %.0f: %.2f per stream\n",
			b.goroutines, i.goroutines, (i.goroutines-b.goroutines)/float64(r.opened))
	}
	if b.redisClients >= 0 && i.redisClients >= 0 {
		fmt.Fprintf(w, "redis clients   %d with 0 streams, %d with %d streams\n", b.redisClients, i.redisClients, r.opened)
	}
	if b.slowDrops >= 0 && e.slowDrops >= 0 {
		fmt.Fprintf(w, "slow drops      %.0f streams dropped as slow while posting\n", e.slowDrops-b.slowDrops)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// printCPU reports the CPU time used from the first post to the last
// delivery, per delivered message: less noisy than latency on a busy
// machine.
func (r *report) printCPU(w io.Writer) {
	line := func(who string, c cpuTime, vsFloor bool) {
		total := c.user + c.system
		fmt.Fprintf(w, "CPU %-11s %v = user %v + system %v", who, total.Round(time.Millisecond),
			c.user.Round(time.Millisecond), c.system.Round(time.Millisecond))
		if r.received > 0 {
			fmt.Fprintf(w, "; per delivery %v", (total / time.Duration(r.received)).Round(10*time.Nanosecond))
			if x, ok := r.floorMultiple(c); ok && vsFloor {
				fmt.Fprintf(w, " (%.2f× floor)", x)
			}
		}
		if n := len(r.posts.acks); n > 0 {
			fmt.Fprintf(w, "; per post %v", (total / time.Duration(n)).Round(10*time.Nanosecond))
		}
		fmt.Fprintf(w, "; %.0f%% of one core\n", 100*total.Seconds()/max(r.posts.elapsed.Seconds(), 1e-9))
	}
	if f := r.cfg.floor; f.us > 0 {
		fmt.Fprintf(w, "floor           %.2f µs CPU per write to a loopback connection (%s)\n", f.us, f.source)
	}
	line("load tool", r.toolCPU[1].sub(r.toolCPU[0]), false)
	if r.cfg.pid != 0 {
		line("server", r.serverCPU[1].sub(r.serverCPU[0]), true)
	}
	if r.cfg.redisPID != 0 {
		line("redis", r.redisCPU[1].sub(r.redisCPU[0]), false)
	}
	if writes, ok := r.serverWriteCalls(); ok && r.received > 0 {
		server := r.serverCPU[1].sub(r.serverCPU[0])
		perWrite := (server.user + server.system) / time.Duration(writes)
		fmt.Fprintf(w, "server writes   %d write calls: %.3f per delivery; server CPU per write call %v",
			writes, float64(writes)/float64(r.received), perWrite.Round(10*time.Nanosecond))
		if f := r.cfg.floor.us; f > 0 {
			fmt.Fprintf(w, " (%.2f× floor)", perWrite.Seconds()*1e6/f)
		}
		fmt.Fprintln(w)
	}
}

// serverWriteCalls is how many write system calls the server made from the
// first post to the last delivery, if both counts were read.
func (r *report) serverWriteCalls() (int64, bool) {
	before, after := r.serverWrites[0], r.serverWrites[1]
	if r.cfg.pid == 0 || before < 0 || after <= before {
		return 0, false
	}
	return after - before, true
}

// floorMultiple is CPU time c per delivery divided by the floor, if there
// is a floor and a delivery.
func (r *report) floorMultiple(c cpuTime) (float64, bool) {
	if r.cfg.floor.us <= 0 || r.received == 0 {
		return 0, false
	}
	perDelivery := (c.user + c.system).Seconds() * 1e6 / float64(r.received)
	return perDelivery / r.cfg.floor.us, true
}
