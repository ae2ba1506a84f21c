package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// report is what a run measured.
type report struct {
	cfg                config
	fileLimit          uint64
	filesNeeded        uint64
	opened, openFailed int
	openTime           time.Duration
	rssBefore          int64 // bytes; 0 without -pid
	rssIdle            int64 // with every stream open, before any post
	rssEnd             int64 // after the last delivery
	// CPU time used by each process: [0] at the first post, [1] after the
	// last delivery.
	serverCPU, toolCPU, redisCPU [2]cpuTime
	posts                        publishResult
	expected, received           int64 // deliveries of acknowledged posts
	lost, duplicates             int64
	unacknowledged               int64 // deliveries of posts whose reply was not a success
	epochs, resets               int64
	malformed, endedEarly        int64
	earlyReasons                 map[string]int // why streams ended early
	latencies                    []int64        // sorted
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
		r.lost == 0 && r.duplicates == 0 && r.epochs == 0 && r.resets == 0 && r.malformed == 0
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
	if c.pid != 0 {
		fmt.Fprintf(w, "server RSS      before %s, idle %s, end %s\n", mib(r.rssBefore), mib(r.rssIdle), mib(r.rssEnd))
		if r.opened > 0 {
			fmt.Fprintf(w, "idle streams    %+d bytes per stream ((idle - before) / %d streams)\n",
				(r.rssIdle-r.rssBefore)/int64(r.opened), r.opened)
		}
	}
	if c.rate == 0 {
		fmt.Fprintf(w, "posts           none (-rate 0), streams held idle for %v\n", c.duration)
	} else {
		p := r.posts
		fmt.Fprintf(w, "posts           %d sent in %v (%.1f/s, target %d/s), %d acknowledged, %d failed\n",
			p.sent, p.elapsed.Round(time.Millisecond), float64(p.sent)/max(p.elapsed.Seconds(), 1e-9),
			c.rate, len(p.acks), p.sent-len(p.acks))
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
	}
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

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// printCPU reports the CPU time used from the first post to the last
// delivery, per delivered message: less noisy than latency on a busy
// machine.
func (r *report) printCPU(w io.Writer) {
	line := func(who string, c cpuTime) {
		total := c.user + c.system
		fmt.Fprintf(w, "CPU %-11s %v = user %v + system %v", who, total.Round(time.Millisecond),
			c.user.Round(time.Millisecond), c.system.Round(time.Millisecond))
		if r.received > 0 {
			fmt.Fprintf(w, "; per delivery %v", (total / time.Duration(r.received)).Round(10*time.Nanosecond))
		}
		fmt.Fprintf(w, "; %.0f%% of one core\n", 100*total.Seconds()/max(r.posts.elapsed.Seconds(), 1e-9))
	}
	line("load tool", r.toolCPU[1].sub(r.toolCPU[0]))
	if r.cfg.pid != 0 {
		line("server", r.serverCPU[1].sub(r.serverCPU[0]))
	}
	if r.cfg.redisPID != 0 {
		line("redis", r.redisCPU[1].sub(r.redisCPU[0]))
	}
}
