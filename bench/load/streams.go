package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stream is one open SSE stream. Its fields after done are written only by
// its reading goroutine and read only once done is closed.
type stream struct {
	room  int
	after int64 // sequence number it resumed after; 0 when live from the start
	body  io.ReadCloser
	r     *bufio.Reader
	done  chan struct{}
	proto int // the answer's HTTP major version

	epoch      string
	seqs       []int64      // sequence numbers received, ascending
	latencies  []int64      // nanoseconds from post sent to event received
	duplicates int          // events at or before a sequence number already seen
	epochs     int          // events of a second epoch (Redis lost the room)
	resets     int          // reset events
	malformed  int          // message events the tool could not read
	early      error        // why the stream ended before the tool closed it
	last       atomic.Int64 // newest sequence number received, readable at any time
}

// streamSet is every stream of a run and what they share.
type streamSet struct {
	all      []*stream
	failed   int           // streams that could not be opened
	openTime time.Duration // time to open them all
	received atomic.Int64  // message events received by all streams
	closing  atomic.Bool
	cancel   context.CancelFunc
	clients  *streamClients
	conns    int64 // connections open once every stream was
}

// openStreams opens n streams, stream i on room i%len(rooms), atOnce at a
// time, and starts reading each. A stream counts as open once the server
// sent its retry field, which it writes after subscribing to the room. If
// resume is not nil, stream i resumes after message resume[i%len(rooms)].
func openStreams(ctx context.Context, clients *streamClients, base string, rooms []string, n, atOnce int, resume []resumePoint) *streamSet {
	ctx, cancel := context.WithCancel(ctx)
	set := &streamSet{all: make([]*stream, 0, n), cancel: cancel, clients: clients}
	openCtx, stopOpening := context.WithTimeout(ctx, openTimeout)
	defer stopOpening()

	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan int)
	)
	start := time.Now()
	for range min(n, atOnce) {
		wg.Go(func() {
			for i := range next {
				var from resumePoint
				if resume != nil {
					from = resume[i%len(rooms)]
				}
				s, err := openStream(ctx, clients.client(i), base+"/rooms/"+rooms[i%len(rooms)]+"/stream", from.id)
				if err == nil && clients.h2 && s.proto != 2 {
					err = fmt.Errorf("answered over HTTP/%d, not HTTP/2", s.proto)
					s.body.Close()
					s = nil
				}
				mu.Lock()
				if err != nil {
					set.failed++
					if set.failed <= 3 {
						fmt.Printf("stream %d: %v\n", i, err)
					}
				} else {
					s.room, s.after = i%len(rooms), from.seq
					set.all = append(set.all, s)
				}
				mu.Unlock()
				if s != nil {
					go s.read(&set.received, &set.closing)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-openCtx.Done():
			set.failed += n - i
			break feed
		}
	}
	close(next)
	wg.Wait()
	set.openTime = time.Since(start)
	set.conns = clients.conns.open.Load()
	return set
}

// resumePoint is a message id a stream resumes after, and its sequence
// number.
type resumePoint struct {
	id  string
	seq int64
}

// openStream connects one stream, which lives as long as ctx, and reads up
// to its retry field. A lastEventID other than "" resumes after it.
func openStream(ctx context.Context, client *http.Client, url, lastEventID string) (*stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || media != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s, %s", url, resp.Status, media)
	}
	s := &stream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 16<<10), done: make(chan struct{}), proto: resp.ProtoMajor}
	// A server that accepts but never writes must not hold the tool.
	timer := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer timer.Stop()
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: before the first event: %w", url, err)
		}
		if bytes.HasPrefix(line, []byte("retry:")) {
			return s, nil
		}
	}
}

// read consumes events until the stream ends, recording each message.
func (s *stream) read(received *atomic.Int64, closing *atomic.Bool) {
	defer close(s.done)
	defer s.body.Close()
	var id, event, data []byte
	for {
		line, err := s.r.ReadSlice('\n')
		if err != nil {
			if !closing.Load() {
				s.early = err
				if err == io.EOF {
					s.early = errors.New("server closed the stream")
				}
			}
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			s.event(id, event, data, received)
			id, event, data = id[:0], event[:0], data[:0]
		case bytes.HasPrefix(line, []byte("id: ")):
			id = append(id[:0], line[4:]...)
		case bytes.HasPrefix(line, []byte("event: ")):
			event = append(event[:0], line[7:]...)
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data[:0], line[6:]...) // the tool's messages are one line
		}
	}
}

// event records one complete event.
func (s *stream) event(id, event, data []byte, received *atomic.Int64) {
	now := time.Now().UnixNano()
	switch string(event) {
	case "message":
	case "reset":
		s.resets++
		return
	default:
		return
	}
	received.Add(1)
	epoch, seq, ok := parseID(id)
	sent, okSent := sentTime(data)
	if !ok || !okSent {
		s.malformed++
		return
	}
	s.latencies = append(s.latencies, now-sent)
	switch {
	case s.epoch == "":
		s.epoch = epoch
	case s.epoch != epoch:
		s.epochs++
		return
	}
	if n := len(s.seqs); n > 0 && seq <= s.seqs[n-1] {
		s.duplicates++
		return
	}
	s.seqs = append(s.seqs, seq)
	s.last.Store(seq)
}

// parseID splits a message id "<epoch>-<seq>".
func parseID(id []byte) (epoch string, seq int64, ok bool) {
	i := bytes.IndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(string(id[i+1:]), 10, 64)
	return string(id[:i]), seq, err == nil
}

// sentTime finds the send time the publisher put at the start of the text:
// "lt:<unix nanoseconds>:".
func sentTime(data []byte) (int64, bool) {
	const mark = `"text":"lt:`
	i := bytes.Index(data, []byte(mark))
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(mark):]
	end := bytes.IndexByte(rest, ':')
	if end < 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return ns, err == nil
}

// close ends every stream and waits until each reader has stopped.
func (set *streamSet) close() {
	set.closing.Store(true)
	set.cancel()
	for _, s := range set.all {
		<-s.done
	}
	set.clients.close()
}
