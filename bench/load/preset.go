package main

import (
	"flag"
	"fmt"
	"slices"
)

// presets are the named scenarios of bench/README.md, as flag values.
// Flags given on the command line override them, so that the same scenario
// runs at small scale in CI (e.g. -preset storm -streams 200 -rooms 10).
var presets = map[string]map[string]string{
	// 10 000 idle streams over 100 rooms: RSS, goroutines and Redis
	// connections per stream.
	"idle": {"streams": "10000", "rooms": "100", "rate": "0", "duration": "2s", "settle": "3s", "open-at-once": "64"},
	// 1 room × 1 000 streams at 200 msg/s: CPU per delivery, latency.
	"fanout": {"streams": "1000", "rooms": "1", "rate": "200", "duration": "10s", "publishers": "16"},
	// 100 rooms × 10 streams, 16 publishers as fast as the server answers.
	"rooms": {"streams": "1000", "rooms": "100", "publishers": "16", "max-rate": "true", "duration": "10s", "drain": "30s"},
	// 100 rooms × 1 stream, 16 publishers as fast as possible, next to
	// redis-benchmark running the same script at the same concurrency.
	"publish": {"streams": "100", "rooms": "100", "publishers": "16", "max-rate": "true", "duration": "10s",
		"redis-benchmark": "true"},
	// 5 000 streams over 100 rooms open at once resuming 50 messages
	// behind while posts continue at 500/s.
	"storm": {"streams": "5000", "rooms": "100", "rate": "500", "duration": "10s", "resume-behind": "50",
		"open-at-once": "1000", "drain": "30s"},
	// One room watched by as many streams as one process may hold here
	// (20 000 open files, hard), leaving headroom: posts at 10/s; run it
	// again with -rate 100.
	"stadium": {"streams": "15000", "rooms": "1", "rate": "10", "duration": "10s", "publishers": "2",
		"open-at-once": "500", "settle": "3s", "drain": "30s"},
	// fanout with 1 % more streams that never read.
	"slow": {"streams": "1000", "rooms": "1", "rate": "200", "duration": "10s", "publishers": "16", "stalled": "10"},
}

func presetNames() []string {
	var names []string
	for name := range presets {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// applyPreset sets the flags of preset name that were not given explicitly.
func applyPreset(fs *flag.FlagSet, name string, explicit map[string]bool) error {
	values, ok := presets[name]
	if !ok {
		return fmt.Errorf("-preset %q: want one of %v", name, presetNames())
	}
	for flagName, value := range values {
		if explicit[flagName] {
			continue
		}
		if err := fs.Set(flagName, value); err != nil {
			return fmt.Errorf("preset %s: -%s=%s: %w", name, flagName, value, err)
		}
	}
	return nil
}
