// Command floor measures the kernel floor of fan-out on the machine at
// hand: the CPU time the writing process spends on one small write to one
// of many loopback TCP connections, in a plain Go loop that does nothing
// else. A fan-out server cannot deliver a message to a connection for less
// than that, so bench/load reports a server's CPU per delivery as a
// multiple of it.
//
//	go run ./bench/floor [-conns 1000] [-size 180] [-rate 0] [-runs 5] [-duration 2s] [-json]
//
// The readers live in a child process (this program re-executed with
// -reader), so the writer's process CPU holds only the writes: the
// connections' receive side runs in the kernel on the writer's CPU as on
// any loopback connection, but the readers' read calls, wake-ups and
// goroutines are the child's. Only 127.0.0.1 is used; every phase is
// bounded and the program stops by itself. bench/README.md has the figure.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Bounds of the flags: the tool must stay a small, bounded measurement.
const (
	maxConns    = 2000
	maxSize     = 64 << 10
	maxRate     = 10_000
	maxRuns     = 20
	maxDuration = 30 * time.Second
	fdMargin    = 64 // descriptors beyond the connections: listener, pipes, runtime
)

type config struct {
	conns    int
	size     int
	rate     int // rounds per second; 0 writes round after round
	runs     int
	duration time.Duration
	json     bool

	reader   bool          // this process is the readers' child
	lifetime time.Duration // child: longest it stays up
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.reader {
		err = serveReaders(ctx, cfg, os.Stdin, os.Stdout)
	} else {
		err = measureFloor(ctx, cfg, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	cfg := config{}
	fs.IntVar(&cfg.conns, "conns", 1000, fmt.Sprintf("loopback TCP connections written to, at most %d", maxConns))
	fs.IntVar(&cfg.size, "size", 180, "bytes per write (one frame)")
	fs.IntVar(&cfg.rate, "rate", 0, "rounds (one write to every connection) per second; 0 writes round after round")
	fs.IntVar(&cfg.runs, "runs", 5, "measured runs; the figure is their median")
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "length of each run")
	fs.BoolVar(&cfg.json, "json", false, "also print the result as one JSON line, for other tools")
	fs.BoolVar(&cfg.reader, "reader", false, "internal: run as the readers' child process")
	fs.DurationVar(&cfg.lifetime, "lifetime", 0, "internal: the child's longest life")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{cfg.conns >= 1 && cfg.conns <= maxConns, fmt.Sprintf("-conns must be 1 to %d", maxConns)},
		{cfg.size >= 1 && cfg.size <= maxSize, fmt.Sprintf("-size must be 1 to %d", maxSize)},
		{cfg.rate >= 0 && cfg.rate <= maxRate, fmt.Sprintf("-rate must be 0 to %d", maxRate)},
		{cfg.runs >= 1 && cfg.runs <= maxRuns, fmt.Sprintf("-runs must be 1 to %d", maxRuns)},
		{cfg.duration > 0 && cfg.duration <= maxDuration, fmt.Sprintf("-duration must be positive and at most %v", maxDuration)},
		{cfg.lifetime >= 0 && cfg.lifetime <= childLifetime(maxRuns, maxDuration), "-lifetime out of range"},
	}
	for _, c := range checks {
		if !c.ok {
			return cfg, errors.New(c.what)
		}
	}
	return cfg, nil
}

// childLifetime bounds the readers' child: every run, the warm-up and the
// set-up, with room to spare, so that it ends even if its parent hangs.
func childLifetime(runs int, duration time.Duration) time.Duration {
	return time.Duration(runs+1)*duration + 2*time.Minute
}

// raiseFileLimit makes sure the process may open need descriptors, raising
// its soft limit up to the hard one if it must.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("need %d open files, the hard limit is %d: lower -conns or raise it (ulimit -Hn)", need, lim.Max)
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open-file limit to %d: %w", need, err)
	}
	return nil
}

// result is what a measurement found; its JSON form is what other tools
// (bench/load -floor auto) read.
type result struct {
	Conns       int        `json:"conns"`
	Size        int        `json:"size"`
	Rate        int        `json:"rate"`
	Runs        int        `json:"runs"`
	USPerWrite  float64    `json:"us_per_write"`        // median of the runs: the writing process's CPU per write
	ThreadUS    float64    `json:"thread_us_per_write"` // median of the runs: the writing thread's alone
	RunsUS      []float64  `json:"runs_us_per_write"`
	SystemShare float64    `json:"system_share"` // system time ÷ process CPU, over all runs
	WritesPerS  float64    `json:"writes_per_s"` // median of the runs, wall clock
	Load1       [2]float64 `json:"load1"`        // 1-minute load average before and after
}

// printJSON writes r as one line.
func (r result) printJSON(w io.Writer) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", line)
	return err
}
