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
			// With -batch, k is the first message of a batch of them.
			step := int64(max(cfg.batch, 1))
			for k := int64(p) * step; k < total; k += int64(cfg.publishers) * step {
				if cfg.maxRate {
					if ctx.Err() != nil || time.Since(start) >= cfg.duration {
						break
					}
				} else if !waitUntil(ctx, start.Add(time.Duration(float64(k)*period))) {
					break
				}
				sent := time.Now()
				if cfg.batch > 0 {
					n := min(step, total-k)
					mine.sent += int(n)
					acks, err := postBatch(ctx, client, cfg.url.String()+"/messages", sent, k, n, rooms, padding)
					if err != nil {
						mine.failures[err.Error()] += int(n)
						continue
					}
					mine.acks = append(mine.acks, acks...)
					for range acks {
						mine.latencies = append(mine.latencies, int64(time.Since(sent)))
					}
					continue
				}
				room := int(k % int64(len(rooms)))
				mine.sent++
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

// postBatch sends messages k to k+n-1 (message i to room i%len(rooms)) as
// one POST /messages and returns the ids of those the server stored.
func postBatch(ctx context.Context, client *http.Client, url string, sent time.Time, k, n int64, rooms []string, padding string) ([]ack, error) {
	items := make([]map[string]string, n)
	for i := range n {
		items[i] = map[string]string{"room": rooms[(k+i)%int64(len(rooms))], "user": "load", "text": loadText(sent, k+i, padding)}
	}
	body, err := json.Marshal(map[string]any{"messages": items})
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	reply, status, err := send(ctx, client, url, body, 64<<20)
	if err != nil {
		return nil, err
	}
	if status != http.StatusMultiStatus {
		return nil, fmt.Errorf("status %d", status)
	}
	var results struct {
		Results []struct {
			Status  int
			Message struct{ ID string }
		}
	}
	if err := json.Unmarshal(reply, &results); err != nil || int64(len(results.Results)) != n {
		return nil, fmt.Errorf("reply is not a batch result")
	}
	acks := make([]ack, 0, n)
	for i, r := range results.Results {
		epoch, seq, ok := parseID([]byte(r.Message.ID))
		if r.Status != http.StatusCreated || !ok {
			continue // counted as lost by the report: sent but not acknowledged
		}
		acks = append(acks, ack{room: int((k + int64(i)) % int64(len(rooms))), epoch: epoch, seq: seq})
	}
	return acks, nil
}

// loadText is message k's text: its send time first, so that the streams
// can measure its latency, padded to the -size.
func loadText(sent time.Time, k int64, padding string) string {
	text := "lt:" + strconv.FormatInt(sent.UnixNano(), 10) + ":" + strconv.FormatInt(k, 10) + ":"
	return text + padding[:max(len(padding)-len(text), 1)]
}

// send posts a JSON body and returns the reply's status and body.
func send(ctx context.Context, client *http.Client, url string, body []byte, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("transport error")
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the reply")
	}
	return reply, resp.StatusCode, nil
}

// post sends one message whose text starts with its send time, so that the
// streams can measure its latency, and returns the id the server gave it.
// Errors are short and stable, since they are counted by text.
func post(ctx context.Context, client *http.Client, url string, sent time.Time, k int64, padding string) (ack, error) {
	body, err := json.Marshal(map[string]string{"user": "load", "text": loadText(sent, k, padding)})
	if err != nil {
		return ack{}, fmt.Errorf("encode: %w", err)
	}
	reply, status, err := send(ctx, client, url, body, 64<<10)
	if err != nil {
		return ack{}, err
	}
	if status != http.StatusCreated {
		return ack{}, fmt.Errorf("status %d", status)
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
