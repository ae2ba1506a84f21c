package main

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// run measures one load run: open the streams, read the server's memory
// idle, post for the duration (or hold the streams idle), wait for the
// deliveries, and compare what each stream received with what was
// acknowledged.
func run(ctx context.Context, cfg config) (*report, error) {
	unknown := snapshot{goroutines: -1, slowDrops: -1, redisClients: -1}
	rep := &report{cfg: cfg, before: unknown, idle: unknown, end: unknown}
	if cfg.floorAuto {
		// Before any stream is open, so that the run's own load does not move the floor.
		f, err := measureFloor(ctx)
		if err != nil {
			return rep, err
		}
		rep.cfg.floor = f
	}
	need := uint64(cfg.streams+cfg.publishers) + 64
	limit, err := raiseFileLimit(need)
	rep.fileLimit, rep.filesNeeded = limit, need
	if err != nil {
		return rep, err
	}
	if err := rep.readMemory(&rep.rssBefore); err != nil {
		return rep, err
	}

	runID := strconv.FormatInt(time.Now().UnixMilli(), 36)
	rooms := make([]string, cfg.rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("load-%s-%d", runID, i)
	}
	if cfg.behind > 0 {
		return rep, storm(ctx, cfg, rep, rooms)
	}
	if err := rep.probe(ctx, &rep.before); err != nil {
		return rep, err
	}
	stalled, err := openStalled(ctx, cfg.url, rooms, cfg.stalled)
	defer stalled.close()
	if err != nil {
		return rep, err
	}
	streams := openStreams(ctx, newStreamClients(cfg), cfg.url.String(), rooms, cfg.streams, cfg.openAtOnce, nil)
	defer streams.close()
	rep.opened, rep.openFailed, rep.openTime, rep.streamConns = len(streams.all), streams.failed, streams.openTime, streams.conns

	if !sleep(ctx, cfg.settle) {
		return rep, ctx.Err()
	}
	if err := rep.readMemory(&rep.rssIdle); err != nil {
		return rep, err
	}
	if err := rep.probe(ctx, &rep.idle); err != nil {
		return rep, err
	}
	if cfg.rate == 0 && !cfg.maxRate {
		if !sleep(ctx, cfg.duration) {
			return rep, ctx.Err()
		}
	} else {
		if err := rep.readCPU(0); err != nil {
			return rep, err
		}
		stopSampling := rep.samplePeakRSS(ctx)
		rep.posts = publish(ctx, cfg, rooms)
		awaitDeliveries(ctx, streams, expected(rep.posts.acks, streams.all, cfg.rooms), cfg.drain)
		if err := rep.readCPU(1); err != nil {
			return rep, err
		}
		stopSampling()
		if err := rep.probe(ctx, &rep.end); err != nil {
			return rep, err
		}
	}
	if cfg.benchmark {
		p := newRedisProbe(cfg.redisAddr)
		defer p.close()
		// As many requests as the server's posts took, at least 20 000.
		rep.benchmarkRate, err = p.benchmarkScript(ctx, cfg.redisAddr, cfg.script, cfg.publishers,
			max(len(rep.posts.acks), 20_000), cfg.size)
		if err != nil {
			return rep, err
		}
	}
	if err := rep.readMemory(&rep.rssEnd); err != nil {
		return rep, err
	}
	streams.close()
	rep.compare(streams.all)
	return rep, ctx.Err()
}

// expected is how many message events the streams must receive: every
// acknowledged post after its resume point, once on every stream of its
// room.
func expected(acks []ack, streams []*stream, rooms int) int64 {
	perRoom := make([][]int64, rooms) // resume points of the room's streams
	for _, s := range streams {
		perRoom[s.room] = append(perRoom[s.room], s.after)
	}
	var n int64
	for _, a := range acks {
		for _, after := range perRoom[a.room] {
			if a.seq > after {
				n++
			}
		}
	}
	return n
}

// awaitDeliveries waits until the streams have received want events, or
// for at most drain.
func awaitDeliveries(ctx context.Context, streams *streamSet, want int64, drain time.Duration) {
	deadline := time.Now().Add(drain)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for streams.received.Load() < want && time.Now().Before(deadline) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// sleep waits for d; it returns false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	return waitUntil(ctx, time.Now().Add(d))
}
