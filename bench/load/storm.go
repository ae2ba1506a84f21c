package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stormResult is what the storm scenario measured.
type stormResult struct {
	prefill      int           // messages posted before the storm
	caughtUp     time.Duration // from the first stream opening to every stream caught up
	notCaughtUp  int           // streams that never caught up
	scriptRuns   int64         // post and history script runs in Redis during the storm; -1 unknown
	livePosts    int           // posts sent during the storm
	historyReads int64         // scriptRuns - livePosts; -1 unknown
	rooms        int
}

// storm posts cfg.behind+1 messages to every room, then, while posting
// continues at cfg.rate, opens every stream at once, each resuming after
// its room's first message, so cfg.behind behind. It measures the time
// until every stream has the room's last message from before the storm,
// and counts the history reads the server made in Redis: the script runs
// (INFO commandstats) less the posts of the storm.
func storm(ctx context.Context, cfg config, rep *report, rooms []string) error {
	prefill, err := prefillRooms(ctx, cfg, rooms)
	if err != nil {
		return err
	}
	rep.storm = stormResult{prefill: len(prefill), scriptRuns: -1, historyReads: -1, rooms: len(rooms)}
	resume := make([]resumePoint, len(rooms))
	newest := int64(cfg.behind + 1)
	for _, a := range prefill {
		if a.seq == 1 {
			resume[a.room] = resumePoint{id: a.epoch + "-1", seq: 1}
		}
	}
	var probe *redisProbe
	var runsBefore int64
	if cfg.redisAddr != "" {
		probe = newRedisProbe(cfg.redisAddr)
		defer probe.close()
		if runsBefore, err = probe.scriptCalls(ctx); err != nil {
			return err
		}
	}
	if err := rep.readCPU(0); err != nil {
		return err
	}
	var live publishResult
	var publishing sync.WaitGroup
	publishing.Go(func() { live = publish(ctx, cfg, rooms) })

	start := time.Now()
	streams := openStreams(ctx, newStreamClients(cfg), cfg.url.String(), rooms, cfg.streams, cfg.openAtOnce, resume)
	defer streams.close()
	rep.opened, rep.openFailed, rep.openTime, rep.streamConns = len(streams.all), streams.failed, streams.openTime, streams.conns
	deadline := start.Add(cfg.duration + cfg.drain)
	for !caughtUp(streams, newest) && time.Now().Before(deadline) {
		if !sleep(ctx, 5*time.Millisecond) {
			break
		}
	}
	rep.storm.caughtUp = time.Since(start)
	for _, s := range streams.all {
		if s.last.Load() < newest {
			rep.storm.notCaughtUp++
		}
	}
	if err := rep.readMemory(&rep.rssIdle); err != nil {
		return err
	}
	publishing.Wait()
	rep.posts = live
	rep.posts.sent += len(prefill)
	rep.posts.acks = append(prefill, live.acks...)
	awaitDeliveries(ctx, streams, expected(rep.posts.acks, streams.all, cfg.rooms), cfg.drain)
	if err := rep.readCPU(1); err != nil {
		return err
	}
	rep.storm.livePosts = live.sent
	if probe != nil {
		runsAfter, err := probe.scriptCalls(ctx)
		if err != nil {
			return err
		}
		rep.storm.scriptRuns = runsAfter - runsBefore
		rep.storm.historyReads = rep.storm.scriptRuns - int64(live.sent)
	}
	if err := rep.readMemory(&rep.rssEnd); err != nil {
		return err
	}
	streams.close()
	rep.compare(streams.all)
	return ctx.Err()
}

// caughtUp reports whether every stream has received message seq of its
// room.
func caughtUp(streams *streamSet, seq int64) bool {
	for _, s := range streams.all {
		if s.last.Load() < seq {
			return false
		}
	}
	return true
}

// prefillRooms posts cfg.behind+1 messages to every room, from
// cfg.publishers clients as fast as the server answers.
func prefillRooms(ctx context.Context, cfg config, rooms []string) ([]ack, error) {
	tr := cfg.transport(nil)
	tr.MaxIdleConnsPerHost = cfg.publishers
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	defer client.CloseIdleConnections()
	padding := strings.Repeat("x", cfg.size)
	total := (cfg.behind + 1) * len(rooms)
	jobs := make(chan int)
	var (
		mu   sync.Mutex
		acks []ack
		errs []error
		wg   sync.WaitGroup
	)
	for range cfg.publishers {
		wg.Go(func() {
			for k := range jobs {
				room := k % len(rooms)
				a, err := post(ctx, client, cfg.url.String()+"/rooms/"+rooms[room]+"/messages", time.Now(), int64(k), padding)
				a.room = room
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acks = append(acks, a)
				}
				mu.Unlock()
			}
		})
	}
	for k := range total {
		if ctx.Err() != nil {
			break
		}
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("storm: %d of %d posts before the storm failed, first: %w", len(errs), total, errs[0])
	}
	return acks, ctx.Err()
}

func (s stormResult) print(w io.Writer) {
	fmt.Fprintf(w, "storm           %d messages posted first; every stream resumed behind; all caught up after %v, %d never\n",
		s.prefill, s.caughtUp.Round(time.Millisecond), s.notCaughtUp)
	reads := "unknown (no -redis-addr)"
	if s.historyReads >= 0 {
		reads = strconv.FormatInt(s.historyReads, 10) + fmt.Sprintf(" = %d script runs in Redis − %d posts; %.1f per room",
			s.scriptRuns, s.livePosts, float64(s.historyReads)/float64(s.rooms))
	}
	fmt.Fprintf(w, "history reads   %s\n", reads)
}
