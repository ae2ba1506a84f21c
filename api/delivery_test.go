package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/redisscripts/redistest"
)

// TestSoakReconnectingClientsGetEveryMessageOnce has publishers post
// concurrently while clients drop their streams at random moments and
// resume with Last-Event-ID, as EventSource does. Every client must end
// with exactly the acknowledged sequence. ROOMCAST_SOAK_SEED replays a run.
func TestSoakReconnectingClientsGetEveryMessageOnce(t *testing.T) {
	redistest.SkipIfShort(t, "soak")
	seed := soakSeed(t)
	const publishers, perPublisher, clients = 4, 250, 4
	s := startServer(t, serverConfig{ClientBuffer: 64})

	results := make([][]message, clients)
	var wg sync.WaitGroup
	started := make(chan struct{}, clients)
	for i := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = reconnectingClient(t, s, rng, publishers*perPublisher, started)
		}()
	}
	for range clients {
		<-started
	}

	var pub sync.WaitGroup
	for range publishers {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for j := range perPublisher {
				s.post(t, "soak", fmt.Sprint("m", j))
			}
		}()
	}
	pub.Wait()
	wg.Wait()
	if t.Failed() {
		return
	}
	_, body := s.do(t, http.MethodGet, "/rooms/soak/messages?limit=200", "")
	var latest struct{ Messages []message }
	if err := json.Unmarshal(body, &latest); err != nil {
		t.Fatal(err)
	}
	for i, got := range results {
		if len(got) != publishers*perPublisher {
			t.Fatalf("client %d received %d messages, want %d", i, len(got), publishers*perPublisher)
		}
		for j, m := range got {
			if m.Seq != int64(j+1) {
				t.Fatalf("client %d: message %d has seq %d", i, j, m.Seq)
			}
		}
		if tail := got[len(got)-200:]; tail[0] != latest.Messages[0] || tail[199] != latest.Messages[199] {
			t.Fatalf("client %d: received messages differ from history", i)
		}
	}
}

// soakSeed is a random seed, or ROOMCAST_SOAK_SEED's to replay a run; a
// failed test logs it.
func soakSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ROOMCAST_SOAK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with ROOMCAST_SOAK_SEED=%d", seed)
		}
	})
	return seed
}

// reconnectingClient reads the soak room until it has want messages,
// dropping the connection after a random number of events each time. It is
// stuck when 30 s pass without a message: the publishers' pace depends on
// the machine's load, a lost message does not.
func reconnectingClient(t *testing.T, s *testServer, rng *rand.Rand, want int, started chan<- struct{}) []message {
	var got []message
	const stuckAfter = 30 * time.Second
	deadline := time.Now().Add(stuckAfter)
	for first := true; len(got) < want; first = false {
		var header []string
		if !first {
			header = []string{"Last-Event-ID", got[len(got)-1].ID}
		}
		if len(got) == 0 && !first {
			header = nil // nothing received yet: still live from the first connect
		}
		c := s.openStream(t, "/rooms/soak/stream", header...)
		c.awaitOpen()
		if first {
			started <- struct{}{}
		}
		for n := rng.IntN(60); n >= 0 && len(got) < want; n-- {
			select {
			case ev, ok := <-c.events:
				if !ok {
					n = 0 // the server closed us (e.g. queue full): reconnect
					continue
				}
				if ev.Event == "" {
					continue
				}
				if ev.Event != "message" {
					t.Errorf("unexpected event %q: %s", ev.Event, ev.Data)
					return got
				}
				var m message
				if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
					t.Errorf("bad data %q: %v", ev.Data, err)
					return got
				}
				got = append(got, m)
				deadline = time.Now().Add(stuckAfter)
			case <-time.After(time.Until(deadline)):
				t.Errorf("client stuck at %d of %d messages", len(got), want)
				return got
			}
		}
		c.Close()
	}
	return got
}

// TestStreamSurvivesRedisOutageAndReportsLostHistory kills Redis under an
// open stream. The stream stays open (heartbeats go on), posts fail fast
// with 503, and after Redis comes back empty the stream announces the lost
// history with a reset event before the new messages; a client resuming
// from an old id gets the same.
// Not parallel: it bounds how long a post takes to fail.
func TestStreamSurvivesRedisOutageAndReportsLostHistory(t *testing.T) {
	s := startServer(t, serverConfig{Heartbeat: time.Second, CheckInterval: 100 * time.Millisecond})
	c := s.openStream(t, "/rooms/r/stream")
	c.awaitOpen()
	old := []message{s.post(t, "r", "one"), s.post(t, "r", "two")}
	for _, want := range old {
		if got := c.nextMessage(); got != want {
			t.Fatalf("streamed %+v, want %+v", got, want)
		}
	}

	s.Redis.Kill()
	start := time.Now()
	resp, body := s.do(t, http.MethodPost, "/rooms/r/messages", `{"text":"lost"}`, "Content-Type", "application/json")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("POST during outage: %d %s, want 503 with Retry-After", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("POST during outage took %v", took)
	}
	awaitComment(t, c, "ping")

	s.Redis.Restart() // without persistence: every room is gone
	fresh := []message{s.post(t, "r", "three"), s.post(t, "r", "four")}
	ev := c.next()
	if ev.Event != "reset" {
		t.Fatalf("event = %q %s, want reset", ev.Event, ev.Data)
	}
	var reset struct {
		Reason, LastEventID, FirstAvailableID string
	}
	_ = json.Unmarshal([]byte(ev.Data), &reset)
	if reset.Reason != "epoch_changed" {
		t.Fatalf("reset data %s, want reason epoch_changed", ev.Data)
	}
	for _, want := range fresh {
		if got := c.nextMessage(); got != want {
			t.Fatalf("streamed %+v, want %+v", got, want)
		}
	}

	resumed := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", old[0].ID)
	resumed.awaitOpen()
	if ev := resumed.next(); ev.Event != "reset" {
		t.Fatalf("resume from a lost id began with %q, want reset", ev.Event)
	}
	for _, want := range fresh {
		if got := resumed.nextMessage(); got != want {
			t.Fatalf("resumed %+v, want %+v", got, want)
		}
	}
}

// awaitComment waits for a comment line with the given text.
func awaitComment(t *testing.T, c *sseClient, text string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatalf("stream ended while waiting for comment %q", text)
			}
			if ev.Comment == text {
				return
			}
			if ev.Event != "" {
				t.Fatalf("got event %q while waiting for comment %q", ev.Event, text)
			}
		case <-timeout:
			t.Fatalf("no comment %q within 10s", text)
		}
	}
}

func TestTwoServersShareRooms(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	a, b := startServer(t, serverConfig{Redis: redis}), startServer(t, serverConfig{Redis: redis})
	onB := b.openStream(t, "/rooms/r/stream")
	onB.awaitOpen()
	first := a.post(t, "r", "posted on a")
	if got := onB.nextMessage(); got != first {
		t.Fatalf("b streamed %+v, want %+v", got, first)
	}
	second := b.post(t, "r", "posted on b")
	resumedOnA := a.openStream(t, "/rooms/r/stream", "Last-Event-ID", first.ID)
	resumedOnA.awaitOpen()
	if got := resumedOnA.nextMessage(); got != second {
		t.Fatalf("a resumed with %+v, want %+v", got, second)
	}
}

// TestResumeFromAnIDAheadOfTheRoom resumes from an id of the room's epoch
// that the room never reached (Redis lost writes, or a forged id): the
// client is told once with a reset and gets every retained message, then
// live ones; more than one page of history must not make the server loop.
func TestResumeFromAnIDAheadOfTheRoom(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	var posted []message
	for i := range 250 {
		posted = append(posted, s.post(t, "r", fmt.Sprint("m", i)))
	}
	epoch, _, _ := strings.Cut(posted[0].ID, "-")
	c := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", epoch+"-99999")
	c.awaitOpen()
	if ev := c.next(); ev.Event != "reset" || !strings.Contains(ev.Data, `"reason":"ahead"`) {
		t.Fatalf("first event %q %s, want a reset with the reason ahead", ev.Event, ev.Data)
	}
	posted = append(posted, s.post(t, "r", "live"))
	for _, want := range posted {
		if got := c.nextMessage(); got != want {
			t.Fatalf("streamed %+v, want %+v", got, want)
		}
	}
}
