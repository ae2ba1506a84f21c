package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roomcast/broker/webhook/webhooktest"
	"roomcast/redisscripts/redistest"
)

// flakyReceiver is a webhook receiver that fails a share of requests at
// random (500) and stalls some, past the sender's timeout or not, from one
// seeded source, up to 3 times per event. It keeps every request it
// answered 2xx.
type flakyReceiver struct {
	*httptest.Server

	mu       sync.Mutex
	rng      *rand.Rand
	ok       []webhooktest.Request // answered 2xx, in the order answered
	bad      map[string]int        // webhook-id -> failures and stalls so far
	failed   int
	inFlight map[string]int // by sender (the "from" of WEBHOOK_URL's query)
	notify   chan struct{}
}

func newFlakyReceiver(t *testing.T, seed uint64, failShare float64, timeout time.Duration) *flakyReceiver {
	rc := &flakyReceiver{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), notify: make(chan struct{}, 1),
		bad: make(map[string]int), inFlight: make(map[string]int)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := webhooktest.Request{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
			Signature: r.Header.Get("webhook-signature"), Body: string(body)}
		rc.mu.Lock()
		fail := rc.rng.Float64() < failShare
		var stall time.Duration
		if rc.rng.Float64() < 0.05 {
			// Half of the stalls outlast WEBHOOK_TIMEOUT: a failure the
			// receiver may still take for a success.
			stall = time.Duration(rc.rng.Int64N(int64(2 * timeout)))
		}
		// At most 3 bad answers to one event, so that the backoff (up to
		// 7 s by then) keeps the soak's run time bounded.
		if rc.bad[got.ID] >= 3 {
			fail, stall = false, 0
		} else if fail || stall > 0 {
			rc.bad[got.ID]++
		}
		from := r.URL.Query().Get("from")
		rc.inFlight[from]++
		rc.mu.Unlock()
		defer func() {
			rc.mu.Lock()
			rc.inFlight[from]--
			rc.mu.Unlock()
		}()
		if stall > 0 {
			select {
			case <-time.After(stall): // a receiver that takes its time
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			rc.mu.Lock()
			rc.failed++
			rc.mu.Unlock()
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		rc.mu.Lock()
		rc.ok = append(rc.ok, got)
		rc.mu.Unlock()
		select {
		case rc.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *flakyReceiver) delivered() []webhooktest.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.ok)
}

// busy reports whether a request of sender from is being answered.
func (rc *flakyReceiver) busy(from string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.inFlight[from] > 0
}

// kill9 ends p with SIGKILL, at once: no shutdown, no deliveries recorded.
func (p *process) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.exit
	p.exit <- err // for the cleanup
}

// soakSeed is WEBHOOK_SOAK_SEED, or a new seed; the test prints it.
func soakSeed(t *testing.T) uint64 {
	if s := os.Getenv("WEBHOOK_SOAK_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WEBHOOK_SOAK_SEED: %v", err)
		}
		return seed
	}
	return rand.Uint64()
}

// TestWebhookSoakKill9: two roomcast processes on one Redis, a receiver
// that fails 30% of requests and sometimes stalls, posts in several rooms
// through both, and one process killed with kill -9 while it delivers, then
// started again. Every stored message reaches the receiver (answered 2xx)
// under at least one webhook-id, each room's first deliveries are in the
// room's order, and every request verifies with the standardwebhooks npm
// package. Rerun a failure with WEBHOOK_SOAK_SEED=<the seed printed>.
func TestWebhookSoakKill9(t *testing.T) {
	redistest.SkipIfShort(t, "a soak of two processes, one killed")
	seed := soakSeed(t)
	t.Logf("seed %d (WEBHOOK_SOAK_SEED=%d reruns it)", seed, seed)
	fmt.Fprintf(os.Stderr, "TestWebhookSoakKill9 seed %d\n", seed)
	rng := rand.New(rand.NewPCG(seed, seed+1))

	const timeout = 500 * time.Millisecond
	redis := redistest.Start(t)
	rc := newFlakyReceiver(t, seed, 0.3, timeout)
	// Each process's URL names it, so that the receiver knows who sends.
	env := func(i int) []string {
		return []string{fmt.Sprintf("WEBHOOK_URL=%s/hooks?from=%d", rc.URL, i), "WEBHOOK_SECRET=" + webhookSecret,
			"WEBHOOK_LEASE=1s", "WEBHOOK_TIMEOUT=" + timeout.String(), "WEBHOOK_EVENTS=message.created", "POST_RATE=0"}
	}
	procs := []*process{startProcess(t, redis.URL(), env(0)...), startProcess(t, redis.URL(), env(1)...)}

	rooms := []string{"soak.a", "soak.b", "soak.c", "soak.d", "soak-e", "soak_f"}
	const perRoom = 15
	post := func(p *process, room string, i int) {
		resp, err := checkedClient.Post(p.url+"/rooms/"+room+"/messages", "application/json",
			strings.NewReader(fmt.Sprintf(`{"text":"m %d"}`, i)))
		if err != nil {
			if strings.Contains(err.Error(), "contract:") {
				t.Errorf("POST to %s: %v", room, err)
			}
			return // the process was killed: the message may or may not be stored
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("POST to %s: status %d", room, resp.StatusCode)
		}
	}
	// Rooms take turns, through either process at random, a third of the
	// posts before the kill.
	posts := make([]int, len(rooms))
	postSome := func(n int) {
		for range n {
			r := rng.IntN(len(rooms))
			post(procs[rng.IntN(len(procs))], rooms[r], posts[r])
			posts[r]++
		}
	}
	postSome(len(rooms) * perRoom / 3)

	// Kill one process while a request of its own is in flight, after
	// some were delivered.
	victim := rng.IntN(len(procs))
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.delivered()) < len(rooms) || !rc.busy(strconv.Itoa(victim)) {
		if time.Now().After(deadline) {
			// The end checks what was lost.
			t.Logf("no delivery in flight within 10s; %d delivered; killing anyway", len(rc.delivered()))
			break
		}
		select {
		case <-rc.notify:
		case <-time.After(2 * time.Millisecond): // polls the in-flight count
		}
	}
	procs[victim].kill9(t)
	t.Logf("killed process %d with %d webhooks delivered", victim, len(rc.delivered()))
	postSome(len(rooms) * perRoom / 3) // the survivor alone takes these (the victim's fail)
	procs[victim] = startProcess(t, redis.URL(), env(victim)...)
	postSome(len(rooms) * perRoom / 3)

	// What Redis stored, through the survivor.
	stored := map[string][]string{} // room -> message ids, in order
	total := 0
	for _, room := range rooms {
		resp, err := checkedClient.Get(procs[1-victim].url + "/rooms/" + room + "/messages?limit=200")
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []struct{ ID string } `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			stored[room] = append(stored[room], m.ID)
		}
		total += len(page.Messages)
	}

	// Wait until each stored message was delivered.
	firsts := func(got []webhooktest.Request) (map[string][]string, map[string]string) {
		order := map[string][]string{} // room -> message ids by first delivery
		hookIDs := map[string]string{} // message id -> webhook-id
		for _, r := range got {
			var b struct {
				Type string
				Data struct{ ID, Room string }
			}
			if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
				t.Fatalf("webhook body %s: %v", r.Body, err)
			}
			if prev, ok := hookIDs[b.Data.ID]; ok {
				if prev != r.ID {
					t.Fatalf("message %s came with webhook-ids %s and %s", b.Data.ID, prev, r.ID)
				}
				continue
			}
			hookIDs[b.Data.ID] = r.ID
			order[b.Data.Room] = append(order[b.Data.Room], b.Data.ID)
		}
		return order, hookIDs
	}
	deadline = time.Now().Add(30 * time.Second)
	var got []webhooktest.Request
	for {
		got = rc.delivered()
		_, hookIDs := firsts(got)
		missing := 0
		for _, ids := range stored {
			for _, id := range ids {
				if _, ok := hookIDs[id]; !ok {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seed %d: %d of %d stored messages never delivered within 30s (%d deliveries, %d failures)",
				seed, missing, total, len(got), rc.failed)
		}
		select {
		case <-rc.notify:
		case <-time.After(time.Second): // retries make no request to wait for
		}
	}
	order, hookIDs := firsts(got)
	if len(hookIDs) != total {
		t.Fatalf("seed %d: %d messages delivered, %d stored", seed, len(hookIDs), total)
	}
	for room, ids := range stored {
		if !slices.Equal(order[room], ids) {
			t.Fatalf("seed %d: room %s delivered first as %v, stored as %v", seed, room, order[room], ids)
		}
	}
	rc.mu.Lock()
	failed := rc.failed
	rc.mu.Unlock()
	t.Logf("seed %d: %d messages in %d rooms, %d deliveries (%d duplicates), %d failures answered",
		seed, total, len(rooms), len(got), len(got)-total, failed)
	webhooktest.VerifyWithNPM(t, webhookSecret, got)
}
