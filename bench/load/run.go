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
	rep := &report{cfg: cfg}
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
	streams := openStreams(ctx, cfg.url.String(), rooms, cfg.streams)
	defer streams.close()
	rep.opened, rep.openFailed, rep.openTime = len(streams.all), streams.failed, streams.openTime

	if !sleep(ctx, cfg.settle) {
		return rep, ctx.Err()
	}
	if err := rep.readMemory(&rep.rssIdle); err != nil {
		return rep, err
	}
	if cfg.rate == 0 {
		if !sleep(ctx, cfg.duration) {
			return rep, ctx.Err()
		}
	} else {
		if err := rep.readCPU(0); err != nil {
			return rep, err
		}
		rep.posts = publish(ctx, cfg, rooms)
		awaitDeliveries(ctx, streams, expected(rep.posts.acks, streams.all, cfg.rooms), cfg.drain)
		if err := rep.readCPU(1); err != nil {
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
// acknowledged post, once on every stream of its room.
func expected(acks []ack, streams []*stream, rooms int) int64 {
	perRoom := make([]int64, rooms)
	for _, s := range streams {
		perRoom[s.room]++
	}
	var n int64
	for _, a := range acks {
		n += perRoom[a.room]
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
