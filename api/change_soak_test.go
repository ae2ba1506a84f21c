package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/redisscripts/redistest"
)

// Writers post, edit and delete at random through two instances on one
// Redis while followers (single-room and multi-room streams) drop their
// streams and resume at random, on either instance. At the end each
// follower's state, built only from the events it received (of each
// message the copy with the highest version), equals every room's history
// from GET, and every single-room follower saw strictly increasing
// positions: each message and change once, in order. ROOMCAST_SOAK_SEED
// replays a run.
func TestSoakEditsAndDeletesConverge(t *testing.T) {
	redistest.SkipIfShort(t, "soak")
	seed := soakSeed(t)
	t.Logf("seed %d", seed)
	const writers, opsPerWriter, followers = 4, 50, 6
	rooms := []string{"cv-a", "cv-b", "cv-c"}
	a := startServer(t, serverConfig{ClientBuffer: 64})
	servers := []*testServer{a, startServer(t, serverConfig{Redis: a.Redis, ClientBuffer: 64})}

	var expected map[string]map[string]message // set before stop is closed
	stop := make(chan struct{})
	started := make(chan struct{}, followers) // each follower's first stream is open
	var fw sync.WaitGroup
	for i := range followers {
		f := &follower{t: t, servers: servers, rng: rand.New(rand.NewPCG(seed, uint64(100+i))),
			state: map[string]map[string]message{}, last: map[string]int64{}}
		if i%2 == 0 {
			f.rooms = []string{rooms[i/2%len(rooms)]}
		} else {
			f.rooms, f.multi = rooms, true
		}
		fw.Add(1)
		go func() {
			defer fw.Done()
			f.run(stop, started, func() map[string]map[string]message { return expected })
		}()
	}
	for range followers {
		<-started // a follower that opened late would miss the first messages
	}

	var ww sync.WaitGroup
	for w := range writers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		ww.Add(1)
		go func() {
			defer ww.Done()
			soakWriter(t, servers, rooms, fmt.Sprint("w", w), rng, opsPerWriter)
		}()
	}
	ww.Wait()
	expected = map[string]map[string]message{}
	for _, room := range rooms {
		page := a.historyPage(t, room, "?limit=200")
		expected[room] = map[string]message{}
		for _, m := range page.Messages {
			expected[room][m.ID] = m
		}
	}
	close(stop)
	fw.Wait()
}

// soakWriter posts, edits and deletes its own messages at random.
func soakWriter(t *testing.T, servers []*testServer, rooms []string, user string, rng *rand.Rand, ops int) {
	type own struct{ id, room string }
	var mine []own
	for i := range ops {
		s := servers[rng.IntN(len(servers))]
		switch op := rng.IntN(10); {
		case op < 5 || len(mine) == 0:
			room := rooms[rng.IntN(len(rooms))]
			body := fmt.Sprintf(`{"text":"%s %d","user":%q}`, user, i, user)
			if rng.IntN(3) == 0 {
				body = fmt.Sprintf(`{"text":"%s %d","user":%q,"metadata":{"n":%d}}`, user, i, user, i)
			}
			resp, answer := s.postJSON(t, room, body)
			if m := decodeMessage(t, resp, answer, http.StatusCreated); m.ID != "" {
				mine = append(mine, own{id: m.ID, room: room})
			}
		case op < 8:
			m := mine[rng.IntN(len(mine))]
			body := fmt.Sprintf(`{"text":"%s edit %d","user":%q}`, user, i, user)
			if rng.IntN(2) == 0 {
				body = fmt.Sprintf(`{"text":"%s edit %d","user":%q,"metadata":null}`, user, i, user)
			}
			resp, answer := s.patch(t, m.room, m.id, body)
			decodeMessage(t, resp, answer, http.StatusOK)
		default:
			j := rng.IntN(len(mine))
			m := mine[j]
			mine = append(mine[:j], mine[j+1:]...) // deleted: not changed again
			resp, answer := s.do(t, http.MethodDelete, "/rooms/"+m.room+"/messages/"+m.id+"?user="+user, "")
			decodeMessage(t, resp, answer, http.StatusOK)
		}
	}
}

// follower follows its rooms, one stream at a time, and keeps of each
// message the copy with the highest version it was sent.
type follower struct {
	t       *testing.T
	servers []*testServer
	rng     *rand.Rand
	rooms   []string
	multi   bool
	state   map[string]map[string]message
	resume  string           // the last event id
	last    map[string]int64 // single-room: the last position
}

func (f *follower) run(stop <-chan struct{}, started chan<- struct{}, expected func() map[string]map[string]message) {
	for first := true; ; first = false {
		select {
		case <-stop:
			f.converge(expected())
			return
		default:
		}
		c := f.open()
		if first {
			started <- struct{}{}
		}
		for n := f.rng.IntN(30); n > 0; n-- {
			select {
			case ev, ok := <-c.events:
				if !ok {
					n = 0
					continue
				}
				f.apply(ev)
			case <-stop:
				n = 0
			case <-time.After(500 * time.Millisecond): // quiet: reconnect anyway
				n = 0
			}
		}
		c.Close()
	}
}

// converge follows until the state equals expected, or fails.
func (f *follower) converge(expected map[string]map[string]message) {
	deadline := time.After(30 * time.Second)
	for !f.matches(expected) {
		c := f.open()
		for open := true; open && !f.matches(expected); {
			select {
			case ev, ok := <-c.events:
				if !ok {
					open = false
					continue
				}
				f.apply(ev)
			case <-deadline:
				c.Close()
				f.t.Errorf("follower of %v (multi %v, resume %s) did not converge: %s", f.rooms, f.multi, f.resume, f.diff(expected))
				return
			}
		}
		c.Close()
	}
}

func (f *follower) open() *sseClient {
	s := f.servers[f.rng.IntN(len(f.servers))]
	var c *sseClient
	if f.multi {
		order := append([]string(nil), f.rooms...)
		f.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		path := "/stream?rooms=" + strings.Join(order, ",")
		if f.resume != "" {
			path += "&last_event_id=" + url.QueryEscape(f.resume)
		}
		c = s.openStream(f.t, path)
	} else {
		var header []string
		if f.resume != "" {
			header = []string{"Last-Event-ID", f.resume}
		}
		c = s.openStream(f.t, "/rooms/"+f.rooms[0]+"/stream", header...)
	}
	c.awaitOpen()
	return c
}

func (f *follower) apply(ev event) {
	switch ev.Event {
	case "message", "edit", "delete":
	case "reset":
		f.t.Errorf("follower of %v got a reset: %s", f.rooms, ev.Data)
		return
	default:
		return // presence and the like
	}
	var m message
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		f.t.Errorf("%s event %q: %v", ev.Event, ev.Data, err)
		return
	}
	if !f.multi {
		_, seqText, _ := strings.Cut(ev.ID, "-")
		pos, err := strconv.ParseInt(seqText, 10, 64)
		if err != nil || pos <= f.last[m.Room] {
			f.t.Errorf("follower of %s: event id %s after position %d: not in order, or twice", m.Room, ev.ID, f.last[m.Room])
		}
		f.last[m.Room] = pos
	}
	f.resume = ev.ID
	room := f.state[m.Room]
	if room == nil {
		room = map[string]message{}
		f.state[m.Room] = room
	}
	// The rule the spec gives clients: the highest version wins, and a
	// change of a message not held is of one older than the client's view.
	have, ok := room[m.ID]
	switch {
	case !ok && ev.Event != "message":
		f.t.Errorf("follower of %s: %s of %s, which it never got", m.Room, ev.Event, m.ID)
	case !ok || m.Version > have.Version:
		room[m.ID] = m
	}
}

func (f *follower) matches(expected map[string]map[string]message) bool {
	return f.diff(expected) == ""
}

func (f *follower) diff(expected map[string]map[string]message) string {
	for _, room := range f.rooms {
		got, want := f.state[room], expected[room]
		if len(got) != len(want) {
			return fmt.Sprintf("%s: %d messages, history has %d", room, len(got), len(want))
		}
		for id, w := range want {
			if g := got[id]; g != w {
				return fmt.Sprintf("%s: message %s is %+v, history has %+v", room, id, g, w)
			}
		}
	}
	return ""
}
