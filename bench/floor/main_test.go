package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlagsBoundsTheMeasurement(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.conns != 1000 || cfg.size != 180 || cfg.rate != 0 || cfg.runs != 5 || cfg.duration != 2*time.Second {
		t.Fatalf("defaults = %+v, want 1000 conns, 180 bytes, rate 0, 5 runs of 2s", cfg)
	}
	for _, args := range [][]string{
		{"-conns", "0"},
		{"-conns", "2001"},
		{"-size", "0"},
		{"-size", "70000"},
		{"-rate", "-1"},
		{"-runs", "0"},
		{"-runs", "21"},
		{"-duration", "0s"},
		{"-duration", "31s"},
		{"-lifetime", "24h"},
		{"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{in: nil, want: 0},
		{in: []float64{3}, want: 3},
		{in: []float64{5, 1, 3}, want: 3},
		{in: []float64{4, 1, 3, 2}, want: 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseLoad1(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "0.52 0.58 0.59 1/467 12345\n", want: 0.52},
		{in: "12.00 3.10 1.00 9/900 1", want: 12},
		{in: "", wantErr: true},
		{in: "x 0.58 0.59 1/467 12345", wantErr: true},
		{in: "0.52", wantErr: true},
	} {
		got, err := parseLoad1(tc.in)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("parseLoad1(%q) = %v, want an error", tc.in, got)
		case !tc.wantErr && (err != nil || got != tc.want):
			t.Errorf("parseLoad1(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestMakeFrameHasTheSizeAndEndsAnEvent(t *testing.T) {
	for _, size := range []int{1, 2, 7, 180, 4096} {
		f := makeFrame(size)
		if len(f) != size {
			t.Fatalf("makeFrame(%d) has %d bytes", size, len(f))
		}
		if size >= 8 && !bytes.HasSuffix(f, []byte("\n\n")) {
			t.Fatalf("makeFrame(%d) = %q, want a blank line at the end", size, f)
		}
	}
}

// The JSON line is what bench/load -floor auto reads: these keys are the
// contract.
func TestResultJSONHasTheKeysBenchLoadReads(t *testing.T) {
	res := result{Conns: 1000, Size: 180, Runs: 5}
	res.summarise([]runCPU{
		{writes: 1000, wall: time.Second, process: cpu{user: time.Millisecond, system: 2 * time.Millisecond}},
		{writes: 1000, wall: time.Second, process: cpu{user: time.Millisecond, system: 3 * time.Millisecond}},
		{writes: 1000, wall: time.Second, process: cpu{user: time.Millisecond, system: 4 * time.Millisecond}},
	})
	var buf bytes.Buffer
	if err := res.printJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("JSON output %q is not one line", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"conns": 1000.0, "size": 180.0, "runs": 5.0, "us_per_write": 4.0} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (in %s)", key, got[key], want, buf.String())
		}
	}
	if _, ok := got["load1"].([]any); !ok {
		t.Errorf("load1 = %v, want a pair", got["load1"])
	}
}

// serveReaders accepts every connection and reports ready, writeRun writes
// its rounds to them, and the readers end once their stdin closes.
func TestReadersTakeTheWritesAndStopWhenStdinCloses(t *testing.T) {
	const conns, rounds = 20, 3
	frame := makeFrame(180)
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- serveReaders(t.Context(), config{conns: conns, runs: 1, duration: time.Second}, stdinR, stdoutW)
		stdoutW.Close()
	}()
	lines := bufio.NewScanner(stdoutR)
	if !lines.Scan() {
		t.Fatal("no address line")
	}
	addr, ok := strings.CutPrefix(lines.Text(), "addr ")
	if !ok {
		t.Fatalf("first line %q, want addr HOST:PORT", lines.Text())
	}
	var open []net.Conn
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("second line %q, want ready", lines.Text())
	}
	r, err := writeRun(t.Context(), open, frame, 0, 0, rounds)
	if err != nil {
		t.Fatal(err)
	}
	if r.writes != conns*rounds {
		t.Fatalf("writes = %d, want %d", r.writes, conns*rounds)
	}
	for _, c := range open {
		c.Close()
	}
	stdinW.Close()
	if err := <-served; err != nil {
		t.Fatalf("serveReaders: %v", err)
	}
	_, _ = io.Copy(io.Discard, stdoutR)
}
