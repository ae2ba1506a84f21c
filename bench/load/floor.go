package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// floorTimeout bounds a -floor auto measurement: bench/floor's defaults
// take about 12 s, go run adds a build.
const floorTimeout = 3 * time.Minute

// floor is the yardstick CPU per delivery is reported against: the
// writing process's CPU per small write to one of many loopback
// connections on this machine (bench/floor).
type floor struct {
	us     float64 // µs of CPU per write; 0: no floor
	source string  // how the figure was obtained, for the report
}

// parseFloor reads -floor: "" for none, "auto" to measure it with
// bench/floor before the run, or the figure in µs ("2.3", "2.3us", "2.3µs").
func parseFloor(s string) (us float64, auto bool, err error) {
	switch s {
	case "":
		return 0, false, nil
	case "auto":
		return 0, true, nil
	}
	num := strings.TrimSuffix(strings.TrimSuffix(s, "us"), "µs")
	us, err = strconv.ParseFloat(num, 64)
	if err != nil || !(us > 0 && us < 1e6) {
		return 0, false, fmt.Errorf("-floor %q: want auto or a positive number of µs", s)
	}
	return us, false, nil
}

// floorResult is the part of bench/floor's JSON line the report uses.
type floorResult struct {
	Conns      int        `json:"conns"`
	Size       int        `json:"size"`
	Runs       int        `json:"runs"`
	USPerWrite float64    `json:"us_per_write"`
	Load1      [2]float64 `json:"load1"`
}

// parseFloorOutput finds bench/floor's JSON line in its output.
func parseFloorOutput(out []byte) (floorResult, error) {
	var res floorResult
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimSpace(lines[i])
		if !bytes.HasPrefix(line, []byte("{")) {
			continue
		}
		if err := json.Unmarshal(line, &res); err != nil {
			return res, fmt.Errorf("bench/floor's JSON line: %w", err)
		}
		if res.USPerWrite <= 0 {
			return res, fmt.Errorf("bench/floor's JSON line %s: no us_per_write", line)
		}
		return res, nil
	}
	return res, errors.New("bench/floor printed no JSON line")
}

// measureFloor runs bench/floor with its defaults: the floor binary beside
// this one if there is one (bench/run.sh builds both), else go run.
func measureFloor(ctx context.Context) (floor, error) {
	ctx, cancel := context.WithTimeout(ctx, floorTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "roomcast/bench/floor", "-json")
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "floor")
		if info, err := os.Stat(beside); err == nil && info.Mode().IsRegular() {
			cmd = exec.CommandContext(ctx, beside, "-json")
		}
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return floor{}, fmt.Errorf("-floor auto: %s: %w", strings.Join(cmd.Args, " "), err)
	}
	res, err := parseFloorOutput(out)
	if err != nil {
		return floor{}, fmt.Errorf("-floor auto: %w", err)
	}
	return floor{us: res.USPerWrite, source: fmt.Sprintf(
		"measured by bench/floor before the run: %d-byte writes to %d loopback connections, median of %d runs, load average %.2f → %.2f",
		res.Size, res.Conns, res.Runs, res.Load1[0], res.Load1[1])}, nil
}
