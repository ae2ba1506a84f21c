package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ack is a post the server acknowledged.
type ack struct {
	room  int
	epoch string
	seq   int64
}

// publishResult is what the publishers did.
type publishResult struct {
	sent      int
	acks      []ack
	failures  map[string]int // failed posts by reason
	elapsed   time.Duration
	latencies []int64 // nanoseconds per acknowledged post
}

// publish posts rate messages per second for duration, message k to room
// k%len(rooms) at start+k/rate, spread over cfg.publishers clients. A
// publisher that falls behind sends at once and never skips a message; it
// stops when duration is over or ctx ends. With -max-rate every publisher
// posts its next message as soon as the last one is answered.
func publish(ctx context.Context, cfg config, rooms []string) publishResult {
	tr := cfg.transport(nil)
	tr.MaxIdleConnsPerHost = cfg.publishers
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	defer client.CloseIdleConnections()
	rate := cfg.rate
	if cfg.maxRate {
		rate = maxRate // a bound on the count; the publishers do not wait
	}
	total := int64(rate) * int64(cfg.duration) / int64(time.Second)
	period := float64(time.Second) / float64(rate)
	padding := strings.Repeat("x", cfg.size)

	res := publishResult{failures: map[string]int{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for p := range cfg.publishers {
		wg.Go(func() {
			var mine publishResult
			mine.failures = map[string]int{}
			for k := int64(p); k < total; k += int64(cfg.publishers) {
				if cfg.maxRate {
					if ctx.Err() != nil || time.Since(start) >= cfg.duration {
						break
					}
				} else if !waitUntil(ctx, start.Add(time.Duration(float64(k)*period))) {
					break
				}
				room := int(k % int64(len(rooms)))
				mine.sent++
				sent := time.Now()
				a, err := post(ctx, client, cfg.url.String()+"/rooms/"+rooms[room]+"/messages", sent, k, padding)
				if err != nil {
					mine.failures[err.Error()]++
					continue
				}
				a.room = room
				mine.acks = append(mine.acks, a)
				mine.latencies = append(mine.latencies, int64(time.Since(sent)))
			}
			mu.Lock()
			defer mu.Unlock()
			res.sent += mine.sent
			res.acks = append(res.acks, mine.acks...)
			res.latencies = append(res.latencies, mine.latencies...)
			for k, v := range mine.failures {
				res.failures[k] += v
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// waitUntil sleeps until t; it returns false if ctx ended first.
func waitUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// post sends one message whose text starts with its send time, so that the
// streams can measure its latency, and returns the id the server gave it.
// Errors are short and stable, since they are counted by text.
func post(ctx context.Context, client *http.Client, url string, sent time.Time, k int64, padding string) (ack, error) {
	text := "lt:" + strconv.FormatInt(sent.UnixNano(), 10) + ":" + strconv.FormatInt(k, 10) + ":"
	text += padding[:max(len(padding)-len(text), 1)]
	body, err := json.Marshal(map[string]string{"user": "load", "text": text})
	if err != nil {
		return ack{}, fmt.Errorf("encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return ack{}, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return ack{}, fmt.Errorf("transport error")
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ack{}, fmt.Errorf("reading the reply")
	}
	if resp.StatusCode != http.StatusCreated {
		return ack{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	var stored struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(reply, &stored); err != nil {
		return ack{}, fmt.Errorf("reply is not a message")
	}
	epoch, seq, ok := parseID([]byte(stored.ID))
	if !ok {
		return ack{}, fmt.Errorf("reply has no message id")
	}
	return ack{epoch: epoch, seq: seq}, nil
}
