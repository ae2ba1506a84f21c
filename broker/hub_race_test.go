package broker

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"roomcast/broker/chat"
	"roomcast/redisscripts"
)

// memHistory is a History kept in memory: messages are stored before they
// are published, as the post script does.
type memHistory struct {
	mu    sync.Mutex
	rooms map[string][][]byte // message seq i+1 at i
}

func (m *memHistory) store(room string, payload string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rooms[room] = append(m.rooms[room], []byte(payload))
}

func (m *memHistory) Positions(_ context.Context, rooms []string) ([]chat.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]chat.ID, len(rooms))
	for i, r := range rooms {
		if n := len(m.rooms[r]); n > 0 {
			out[i] = chat.ID{Epoch: "mbench", Seq: int64(n)}
		}
	}
	return out, nil
}

func (m *memHistory) History(_ context.Context, room string, q chat.Query) (chat.Page, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	msgs := m.rooms[room][min(q.Cursor.Seq, int64(len(m.rooms[room]))):]
	page := chat.Page{HasMore: len(msgs) > q.Limit}
	page.Messages = msgs[:min(len(msgs), q.Limit)]
	return page, nil
}

// recorder is a listener that records what it is given and notices calls
// after it was dropped.
type recorder struct {
	slowAfter int // Deliver refuses once it has this many; 0: never
	mu        sync.Mutex
	got       []chat.ID
	dropped   bool
	late      bool // called after Dropped
}

func (r *recorder) Deliver(m *Message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped {
		r.late = true
	}
	if m.Ephemeral() {
		return true
	}
	if r.slowAfter > 0 && len(r.got) >= r.slowAfter {
		return false
	}
	r.got = append(r.got, m.ID)
	return true
}

func (r *recorder) Dropped(error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped {
		r.late = true
	}
	r.dropped = true
}

// TestConcurrentListenersGetGapFreeSequences feeds many rooms from several
// goroutines, as several subscriptions would, while listeners join and leave
// them, some too slow, some losing Pub/Sub messages that the hub repairs
// from history: every listener must get an unbroken run from its start.
func TestConcurrentListenersGetGapFreeSequences(t *testing.T) {
	const (
		rooms      = 24
		feeders    = 4
		perFeeder  = 3000
		joiners    = 6
		perJoiner  = 300
		lostOneIn  = 97 // Pub/Sub messages never received
		slowOneIn  = 7  // listeners that stop taking messages
		ephemeral  = 13 // an event every so many messages
		seqEpoch   = "mbench"
		maxBacklog = 64
	)
	keys := redisscripts.NewKeys("race:")
	hist := &memHistory{rooms: make(map[string][][]byte)}
	h := New(nil, Options{Keys: keys, History: hist, Encoder: benchEncoder{}, ClientBuffer: 4,
		DeliveryCheckInterval: 1e9, RedisTimeout: 1e9})
	ctx := t.Context()
	roomName := func(i int) string { return "r" + strconv.Itoa(i) }

	var wg sync.WaitGroup
	for f := range feeders {
		wg.Go(func() {
			seqs := make(map[string]int64)
			for i := range perFeeder {
				room := roomName(f + feeders*(i%(rooms/feeders)))
				if i%ephemeral == 0 {
					h.Receive(ctx, keys.Channel(room), "!typing\n{}")
				}
				seqs[room]++
				channel, payload := roomPayload(keys, room, seqs[room])
				hist.store(room, payload)
				if rand.IntN(lostOneIn) != 0 {
					h.Receive(ctx, channel, payload)
				}
			}
		})
	}
	for range joiners {
		wg.Go(func() {
			type joined struct {
				room  string
				l     *recorder
				start chat.ID
				known bool // start is meaningful: l was not dropped before Listen returned
			}
			var open []joined
			check := func(j joined) {
				j.l.mu.Lock()
				defer j.l.mu.Unlock()
				if j.l.late {
					t.Errorf("room %s: listener called after it was dropped", j.room)
				}
				if !j.known {
					return
				}
				prev := j.start
				for _, id := range j.l.got {
					if !id.Follows(prev) {
						t.Errorf("room %s: %v after %v (start %v)", j.room, id, prev, j.start)
						return
					}
					prev = id
				}
			}
			leave := func(i int) {
				j := open[i]
				var last chat.ID // delivered to the room before j leaves: j must have it
				if r := h.lockRoom(j.room); r != nil {
					last = r.last
					r.mu.Unlock()
				}
				if j.known && !j.l.isDropped() && last != j.start && last.Epoch != "" {
					j.l.mu.Lock()
					if n := len(j.l.got); n == 0 || !last.Covered(j.l.got[n-1]) {
						t.Errorf("room %s: listener missed messages up to %v (got %d)", j.room, last, n)
					}
					j.l.mu.Unlock()
				}
				if h.Unlisten(j.room, j.l) == j.l.isDropped() {
					t.Errorf("room %s: Unlisten disagrees with Dropped", j.room)
				}
				check(j)
				open = append(open[:i], open[i+1:]...)
			}
			for range perJoiner {
				if len(open) > 0 && (rand.IntN(2) == 0 || len(open) >= maxBacklog) {
					leave(rand.IntN(len(open)))
					continue
				}
				l := &recorder{}
				if rand.IntN(slowOneIn) == 0 {
					l.slowAfter = 1 + rand.IntN(5)
				}
				room := roomName(rand.IntN(rooms))
				start, err := h.Listen(ctx, room, l)
				if err != nil {
					t.Error(err)
					return
				}
				if start.Epoch != "" && start.Epoch != seqEpoch {
					t.Errorf("start %v", start)
				}
				open = append(open, joined{room, l, start, !l.isDropped()})
				if _, err := h.Since(ctx, room, start); err != nil {
					t.Error(err)
				}
			}
			for len(open) > 0 {
				leave(0)
			}
		})
	}
	wg.Wait()
	h.repairs.Wait()
	if st := h.Stats(); st.Subscribers != 0 || st.Rooms != 0 {
		t.Errorf("after every listener left: %+v", st)
	}
	for i := range h.rooms {
		if n := len(h.rooms[i].rooms); n != 0 {
			t.Errorf("stripe %d still holds %d rooms", i, n)
		}
	}
}

func (r *recorder) isDropped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}
