package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rusageThread is RUSAGE_THREAD of getrusage(2) on Linux, which package
// syscall does not name.
const rusageThread = 1

// warmupRounds are written before the first run so that socket buffers and
// the runtime's poller are set up before anything is counted.
const warmupRounds = 20

// measureFloor starts the readers' child, opens the connections, writes
// cfg.runs runs and prints the median CPU per write.
func measureFloor(ctx context.Context, cfg config, out io.Writer) error {
	if err := raiseFileLimit(uint64(cfg.conns + fdMargin)); err != nil {
		return err
	}
	res := result{Conns: cfg.conns, Size: cfg.size, Rate: cfg.rate, Runs: cfg.runs}
	res.Load1[0] = readLoad1()
	child, err := startReaders(ctx, cfg)
	if err != nil {
		return err
	}
	defer child.stop()
	conns := make([]net.Conn, 0, cfg.conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialer := net.Dialer{Timeout: 10 * time.Second}
	for range cfg.conns {
		c, err := dialer.DialContext(ctx, "tcp", child.addr)
		if err != nil {
			return fmt.Errorf("dial the readers: %w", err)
		}
		conns = append(conns, c)
	}
	if _, err := child.await("ready", 30*time.Second); err != nil {
		return err
	}

	frame := makeFrame(cfg.size)
	fmt.Fprintf(out, "floor: per round one %d-byte write to each of %d loopback connections, %s; %s of %v\n",
		cfg.size, cfg.conns, rateText(cfg.rate), runsText(cfg.runs), cfg.duration)
	if _, err := writeRun(ctx, conns, frame, cfg.rate, 0, warmupRounds); err != nil {
		return err
	}
	var runs []runCPU
	for i := range cfg.runs {
		r, err := writeRun(ctx, conns, frame, cfg.rate, cfg.duration, 0)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		fmt.Fprintf(out, "run %d: %d writes in %v (%.0f/s): process %.3f µs/write (user %.3f + system %.3f), writing thread %.3f µs/write\n",
			i+1, r.writes, r.wall.Round(time.Millisecond), r.writesPerS(),
			r.perWrite(r.process.total()), r.perWrite(r.process.user), r.perWrite(r.process.system), r.perWrite(r.thread.total()))
	}
	res.Load1[1] = readLoad1()
	res.summarise(runs)
	fmt.Fprintf(out, "floor: %.2f µs CPU per write (median of %s: %s; writing thread alone %.2f µs; %.0f%% system time), %.0f writes/s, load average %.2f → %.2f\n",
		res.USPerWrite, runsText(res.Runs), joinFloats(res.RunsUS), res.ThreadUS, 100*res.SystemShare, res.WritesPerS, res.Load1[0], res.Load1[1])
	if cfg.json {
		return res.printJSON(out)
	}
	return nil
}

func runsText(n int) string {
	if n == 1 {
		return "1 run"
	}
	return strconv.Itoa(n) + " runs"
}

func rateText(rate int) string {
	if rate == 0 {
		return "round after round"
	}
	return strconv.Itoa(rate) + " rounds/s"
}

// makeFrame is size bytes shaped like an SSE event: text ending in a blank
// line. Only its length matters to the kernel.
func makeFrame(size int) []byte {
	frame := []byte(strings.Repeat("x", size))
	copy(frame, "data: ")
	if size >= 2 {
		frame[size-2], frame[size-1] = '\n', '\n'
	}
	return frame
}

// cpu is CPU time in user space and in the kernel.
type cpu struct{ user, system time.Duration }

func (c cpu) total() time.Duration { return c.user + c.system }
func (c cpu) sub(d cpu) cpu        { return cpu{c.user - d.user, c.system - d.system} }

func rusage(who int) (cpu, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return cpu{}, fmt.Errorf("getrusage(%d): %w", who, err)
	}
	return cpu{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}, nil
}

// usage is the CPU used so far by the calling OS thread and by the process.
func usage() (thread, process cpu, err error) {
	if thread, err = rusage(rusageThread); err != nil {
		return cpu{}, cpu{}, err
	}
	process, err = rusage(syscall.RUSAGE_SELF)
	return thread, process, err
}

// runCPU is what one run cost.
type runCPU struct {
	writes  int
	wall    time.Duration
	process cpu // the whole process: the writes, the runtime, the poller
	thread  cpu // the writing OS thread alone
}

func (r runCPU) perWrite(d time.Duration) float64 {
	return d.Seconds() * 1e6 / float64(max(r.writes, 1))
}

func (r runCPU) writesPerS() float64 { return float64(r.writes) / max(r.wall.Seconds(), 1e-9) }

// writeRun writes frame to every connection, round after round (at rate
// rounds/s if rate > 0), for duration or, if rounds > 0, that many rounds,
// on one locked OS thread, and returns the CPU it cost.
func writeRun(ctx context.Context, conns []net.Conn, frame []byte, rate int, duration time.Duration, rounds int) (runCPU, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r runCPU
	thread0, process0, err := usage()
	if err != nil {
		return r, err
	}
	start := time.Now()
	for round := 0; ; round++ {
		if rounds > 0 && round == rounds || rounds == 0 && time.Since(start) >= duration {
			break
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		for _, c := range conns {
			if _, err := c.Write(frame); err != nil {
				return r, fmt.Errorf("write: %w", err)
			}
		}
		r.writes += len(conns)
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(round+1) * time.Second / time.Duration(rate))))
		}
	}
	r.wall = time.Since(start)
	thread1, process1, err := usage()
	if err != nil {
		return r, err
	}
	r.thread, r.process = thread1.sub(thread0), process1.sub(process0)
	return r, nil
}

// summarise sets the medians and shares of res from the runs.
func (res *result) summarise(runs []runCPU) {
	var process, thread, rates []float64
	var all cpu
	for _, r := range runs {
		process = append(process, r.perWrite(r.process.total()))
		thread = append(thread, r.perWrite(r.thread.total()))
		rates = append(rates, r.writesPerS())
		all.user += r.process.user
		all.system += r.process.system
	}
	res.RunsUS = process
	res.USPerWrite = round3(median(process))
	res.ThreadUS = round3(median(thread))
	res.WritesPerS = math.Round(median(rates))
	if t := all.total(); t > 0 {
		res.SystemShare = round3(all.system.Seconds() / t.Seconds())
	}
	for i, v := range res.RunsUS {
		res.RunsUS[i] = round3(v)
	}
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// median is the middle value of vs (the mean of the two middle ones for an
// even count); 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func joinFloats(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strings.Join(parts, ", ")
}

// readLoad1 is the 1-minute load average, or -1 if it cannot be read.
func readLoad1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	v, err := parseLoad1(string(b))
	if err != nil {
		return -1
	}
	return v
}

// parseLoad1 reads the 1-minute load average from the text of
// /proc/loadavg ("0.52 0.58 0.59 1/467 12345").
func parseLoad1(s string) (float64, error) {
	fields := strings.Fields(s)
	if len(fields) < 3 {
		return 0, fmt.Errorf("/proc/loadavg %q: want three load averages", s)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/loadavg %q: %w", s, err)
	}
	return v, nil
}
