package main

import (
	"math"
	"testing"
	"time"
)

func TestParseFloor(t *testing.T) {
	for _, tc := range []struct {
		in       string
		wantUS   float64
		wantAuto bool
		wantErr  bool
	}{
		{in: ""},
		{in: "auto", wantAuto: true},
		{in: "2.3", wantUS: 2.3},
		{in: "2.3us", wantUS: 2.3},
		{in: "6.57µs", wantUS: 6.57},
		{in: "0", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "fast", wantErr: true},
		{in: "2.3ms", wantErr: true},
	} {
		us, auto, err := parseFloor(tc.in)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("parseFloor(%q) = %v, %v, want an error", tc.in, us, auto)
		case !tc.wantErr && (err != nil || us != tc.wantUS || auto != tc.wantAuto):
			t.Errorf("parseFloor(%q) = %v, %v, %v, want %v, %v", tc.in, us, auto, err, tc.wantUS, tc.wantAuto)
		}
	}
	cfg, err := parseFlags([]string{"-preset", "fanout", "-floor", "2.5"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.floor.us != 2.5 || cfg.floorAuto {
		t.Fatalf("-floor 2.5: floor %+v, auto %v", cfg.floor, cfg.floorAuto)
	}
}

func TestParseFloorOutputFindsTheJSONLine(t *testing.T) {
	out := "floor: 1000 × 180-byte writes per round to 1000 loopback connections, round after round, 5 runs of 2s\n" +
		"run 1: 92000 writes in 1.004s (91623/s): process 6.170 µs/write (user 0.336 + system 5.834), writing thread 5.789 µs/write\n" +
		"floor: 6.57 µs CPU per write (median of 5 runs)\n" +
		`{"conns":1000,"size":180,"rate":0,"runs":5,"us_per_write":6.566,"thread_us_per_write":6.19,"load1":[1.11,1.58]}` + "\n"
	res, err := parseFloorOutput([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := floorResult{Conns: 1000, Size: 180, Runs: 5, USPerWrite: 6.566, Load1: [2]float64{1.11, 1.58}}
	if res != want {
		t.Fatalf("parseFloorOutput = %+v, want %+v", res, want)
	}
	for _, bad := range []string{
		"floor: 6.57 µs CPU per write\n",
		`{"conns":1000,"us_per_write":0}`,
		`{"conns":`,
	} {
		if res, err := parseFloorOutput([]byte(bad)); err == nil {
			t.Errorf("parseFloorOutput(%q) = %+v, want an error", bad, res)
		}
	}
}

func TestFloorMultipleIsCPUPerDeliveryOverTheFloor(t *testing.T) {
	c := cpuTime{user: 1 * time.Millisecond, system: 3 * time.Millisecond} // 4 µs per delivery below
	for _, tc := range []struct {
		name     string
		floorUS  float64
		received int64
		want     float64
		wantOK   bool
	}{
		{name: "OK", floorUS: 2, received: 1000, want: 2, wantOK: true},
		{name: "BelowTheFloor", floorUS: 8, received: 1000, want: 0.5, wantOK: true},
		{name: "NoFloor", received: 1000},
		{name: "NoDelivery", floorUS: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{cfg: config{floor: floor{us: tc.floorUS}}, received: tc.received}
			got, ok := r.floorMultiple(c)
			if ok != tc.wantOK || math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("floorMultiple = %v, %v, want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestProcCounterReadsProcIO(t *testing.T) {
	procIO := "rchar: 2112\nwchar: 9000\nsyscr: 7\nsyscw: 355419\nread_bytes: 0\n"
	for _, tc := range []struct {
		text, name string
		want       int64
		wantErr    bool
	}{
		{text: procIO, name: "syscw", want: 355419},
		{text: procIO, name: "syscr", want: 7},
		{text: procIO, name: "cancelled_write_bytes", wantErr: true},
		{text: "syscw: many\n", name: "syscw", wantErr: true},
		{text: "", name: "syscw", wantErr: true},
	} {
		got, err := procCounter(tc.text, tc.name)
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("procCounter(%q, %s) = %d, want an error", tc.text, tc.name, got)
		case !tc.wantErr && (err != nil || got != tc.want):
			t.Errorf("procCounter(%q, %s) = %d, %v, want %d", tc.text, tc.name, got, err, tc.want)
		}
	}
}

func TestServerWriteCallsNeedsBothCounts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pid    int
		writes [2]int64
		want   int64
		wantOK bool
	}{
		{name: "OK", pid: 1, writes: [2]int64{12, 355_431}, want: 355_419, wantOK: true},
		{name: "NoPID", writes: [2]int64{12, 20}},
		{name: "Unread", pid: 1, writes: [2]int64{-1, 20}},
		{name: "NoWrite", pid: 1, writes: [2]int64{12, 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{cfg: config{pid: tc.pid}, serverWrites: tc.writes}
			got, ok := r.serverWriteCalls()
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("serverWriteCalls = %d, %v, want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
