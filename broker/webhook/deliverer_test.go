package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"roomcast/broker/chat"
	"roomcast/broker/webhook"
	"roomcast/broker/webhook/signature"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSecret is whsec_ and the base64 of 32 bytes.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/2ihN9d+oBI="

var secret = func() signature.Secret {
	s, err := signature.ParseSecret(testSecret)
	if err != nil {
		panic(err)
	}
	return s
}()

// received is one request the receiver got.
type received struct {
	ID, Timestamp, Signature string
	Body                     []byte
}

// receiver records every request and answers what answer says.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(r received, n int) int // n: requests so far with this id
	seen   map[string]int
	notify chan struct{}
}

func newReceiver(t *testing.T, answer func(r received, n int) int) *receiver {
	rc := &receiver{answer: answer, seen: make(map[string]int), notify: make(chan struct{}, 1)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
			Signature: r.Header.Get("webhook-signature"), Body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		rc.seen[got.ID]++
		n := rc.seen[got.ID]
		rc.mu.Unlock()
		select {
		case rc.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(rc.answer(got, n))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// await waits until cond holds for the requests so far.
func (rc *receiver) await(t *testing.T, what string, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		got := rc.requests()
		if cond(got) {
			return got
		}
		select {
		case <-rc.notify:
		case <-deadline:
			t.Fatalf("no %s within 20s; got %d requests", what, len(got))
		}
	}
}

type setup struct {
	store *redisscripts.Store
	rdb   *redis.Client
}

func newSetup(t testing.TB) setup {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	store := redisscripts.NewStore(rdb, redisscripts.NewKeys("test:"), redisscripts.StoreOptions{
		HistoryMax: 1000, IdempotencyTTL: time.Hour, WebhookEvents: chat.WebhookEventTypes})
	return setup{store: store, rdb: rdb}
}

func (s setup) start(t testing.TB, url string, mod func(*webhook.Options)) *webhook.Deliverer {
	t.Helper()
	opts := webhook.Options{Outbox: s.store, WebhookURL: url, WebhookSecret: secret, WebhookLease: 2 * time.Second,
		WebhookTimeout: 500 * time.Millisecond, WebhookMaxAge: time.Hour, ScanInterval: 10 * time.Millisecond,
		FirstRetry: 20 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond, RedisTimeout: time.Second}
	if mod != nil {
		mod(&opts)
	}
	d := webhook.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func (s setup) post(t *testing.T, room, text string) chat.Posted {
	t.Helper()
	p, err := s.store.Post(t.Context(), chat.Post{Room: room, User: "ann", Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// body is a webhook's body as sent.
type body struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// checkSigned verifies r's signature as the specification defines it,
// independently of package signature.
func checkSigned(t *testing.T, r received) body {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(testSecret[len("whsec_"):])
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", r.ID, r.Timestamp, r.Body)
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.Signature != want {
		t.Fatalf("signature %q of %s, want %q", r.Signature, r.ID, want)
	}
	var b body
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	return b
}

func firsts(got []received) []received {
	seen := map[string]bool{}
	var out []received
	for _, r := range got {
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	return out
}

func TestMessageCreatedIsSignedAndInOrder(t *testing.T) {
	s := newSetup(t)
	rc := newReceiver(t, func(received, int) int { return http.StatusNoContent })
	s.start(t, rc.URL, nil)
	var posted []chat.Posted
	for i := range 20 {
		posted = append(posted, s.post(t, "lobby", fmt.Sprint("m", i)))
	}
	got := rc.await(t, "20 deliveries", func(g []received) bool { return len(g) >= 20 })
	for i, r := range got[:20] {
		b := checkSigned(t, r)
		if b.Type != "message.created" || string(b.Data) != string(posted[i].JSON) {
			t.Fatalf("delivery %d = %s, want message.created of %s", i, r.Body, posted[i].JSON)
		}
		if want := chat.WebhookID("lobby", ""); len(r.ID) <= len(want) {
			t.Fatalf("webhook-id %q", r.ID)
		}
	}
}

func TestFailuresRetryInOrder(t *testing.T) {
	s := newSetup(t)
	// Every event fails twice before it is taken.
	rc := newReceiver(t, func(_ received, n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := s.start(t, rc.URL, nil)
	var posted []chat.Posted
	for _, room := range []string{"a", "b.c"} {
		for i := range 5 {
			posted = append(posted, s.post(t, room, fmt.Sprint(room, i)))
		}
	}
	got := rc.await(t, "every event taken", func(g []received) bool { return len(firsts(g)) == 10 && len(g) >= 30 })
	perRoom := map[string][]string{}
	for _, r := range firsts(got) {
		b := checkSigned(t, r)
		var m struct{ Room, ID string }
		_ = json.Unmarshal(b.Data, &m)
		perRoom[m.Room] = append(perRoom[m.Room], m.ID)
	}
	for _, p := range posted {
		var m struct{ Room, ID string }
		_ = json.Unmarshal(p.JSON, &m)
		if len(perRoom[m.Room]) == 0 || perRoom[m.Room][0] != m.ID {
			t.Fatalf("room %s: deliveries in order %v, want %s next", m.Room, perRoom[m.Room], m.ID)
		}
		perRoom[m.Room] = perRoom[m.Room][1:]
	}
	// A room's next event goes out only after the previous one got a 2xx.
	last := map[string]int{}
	for _, r := range got {
		b := checkSigned(t, r)
		var m struct {
			Room string
			Seq  int
		}
		_ = json.Unmarshal(b.Data, &m)
		if m.Seq < last[m.Room] {
			t.Fatalf("room %s: seq %d sent after %d", m.Room, m.Seq, last[m.Room])
		}
		last[m.Room] = m.Seq
	}
	// The counters move once the answers are read, after the receiver saw them.
	deadline := time.Now().Add(10 * time.Second)
	for st := d.Stats(); st.Failed < 20 || st.Delivered < 10; st = d.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want ≥ 20 failed and ≥ 10 delivered", st)
		}
		time.Sleep(time.Millisecond) // polling a counter: no event to await
	}
}

func TestTooOldBecomesDeadAndIsSentAgain(t *testing.T) {
	s := newSetup(t)
	var mu sync.Mutex
	refuse := true
	rc := newReceiver(t, func(received, int) int {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s.start(t, rc.URL, func(o *webhook.Options) { o.WebhookMaxAge = 300 * time.Millisecond })
	first := s.post(t, "r", "doomed")
	deadline := time.Now().Add(10 * time.Second)
	var dead []chat.DeadEvent
	for len(dead) == 0 && time.Now().Before(deadline) {
		select {
		case <-rc.notify:
		case <-time.After(50 * time.Millisecond): // dead letters make no request to wait for
		}
		page, err := s.store.DeadEvents(t.Context(), "", 10)
		if err != nil {
			t.Fatal(err)
		}
		dead = page.Events
	}
	if len(dead) != 1 || dead[0].Room != "r" || dead[0].Type != "message.created" || string(dead[0].Data) != string(first.JSON) ||
		dead[0].Attempts < 2 || dead[0].LastError != "status 500 Internal Server Error" || dead[0].LastStatus != 500 {
		t.Fatalf("dead letters %+v, want the one message after some attempts", dead)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	second := s.post(t, "r", "fine")
	got := rc.await(t, "the next event", func(g []received) bool { return string(checkSigned(t, g[len(g)-1]).Data) == string(second.JSON) })
	n := len(got)
	if ev, err := s.store.ReviveDead(t.Context(), dead[0].ID); err != nil || ev.ID != dead[0].ID || string(ev.Data) != string(first.JSON) {
		t.Fatalf("revive: %+v %v", ev, err)
	}
	got = rc.await(t, "the revived event", func(g []received) bool { return len(g) > n })
	r := got[len(got)-1]
	if b := checkSigned(t, r); r.ID != dead[0].ID || string(b.Data) != string(first.JSON) ||
		b.Timestamp != dead[0].Timestamp.Format(webhook.TimeFormat) {
		t.Fatalf("revived delivery %s %s, want id %s with %s at %s", r.ID, r.Body, dead[0].ID, first.JSON, dead[0].Timestamp)
	}
	if _, err := s.store.ReviveDead(t.Context(), dead[0].ID); err != redisscripts.ErrNoDeadEvent {
		t.Fatalf("second revive: %v, want ErrNoDeadEvent", err)
	}
	if left, _ := s.store.DeadEvents(t.Context(), "", 10); len(left.Events) != 0 {
		t.Fatalf("dead letters after the revive: %+v", left)
	}
}

func TestOffWritesNoOutbox(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	store := redisscripts.NewStore(rdb, redisscripts.NewKeys("test:"), redisscripts.StoreOptions{HistoryMax: 10, IdempotencyTTL: time.Hour})
	if _, err := store.Post(t.Context(), chat.Post{Room: "r", User: "u", Text: "x", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	keys, _ := rdb.Keys(t.Context(), "*webhook*").Result()
	if len(keys) != 0 {
		t.Fatalf("keys %v with webhooks off", keys)
	}
}
