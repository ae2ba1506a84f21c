package api_test

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"roomcast/redisscripts/redistest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Clients hold multi-room streams over two instances on one Redis and
// reconnect at random, to either instance, with their last composite id
// and the rooms in a new order, while posts race in every room through
// both instances: each client ends with exactly each room's messages, in
// order. ROOMCAST_SOAK_SEED replays a run.
func TestSoakMultiRoomClientsAcrossInstancesGetEveryMessageOnce(t *testing.T) {
	redistest.SkipIfShort(t, "soak")
	seed := soakSeed(t)
	const clients, perRoom = 4, 60
	rooms := []string{"soak-a", "soak-b", "soak-c"}
	a := startServer(t, serverConfig{ClientBuffer: 64})
	servers := []*testServer{a, startServer(t, serverConfig{Redis: a.Redis, ClientBuffer: 64})}

	results := make([]map[string][]message, clients)
	var wg sync.WaitGroup
	started := make(chan struct{}, clients)
	for i := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = multiRoomClient(t, servers, rooms, rng, perRoom, started)
		}()
	}
	for range clients {
		<-started
	}
	var pub sync.WaitGroup
	for r, room := range rooms {
		pub.Add(1)
		go func() {
			defer pub.Done()
			for j := range perRoom {
				servers[(r+j)%len(servers)].post(t, room, fmt.Sprint(room, "-", j))
			}
		}()
	}
	pub.Wait()
	wg.Wait()
	for i, got := range results {
		for _, room := range rooms {
			if len(got[room]) != perRoom {
				t.Fatalf("client %d: %d messages of %s, want %d", i, len(got[room]), room, perRoom)
			}
			for j, m := range got[room] {
				if m.Seq != int64(j+1) || m.Text != fmt.Sprint(room, "-", j) {
					t.Fatalf("client %d: message %d of %s is %+v", i, j, room, m)
				}
			}
		}
	}
}

// multiRoomClient follows rooms until it has want messages of each,
// dropping its stream after a random number of messages (at least one, so
// that it always has an id to resume from) and reconnecting to a random
// instance.
func multiRoomClient(t *testing.T, servers []*testServer, rooms []string, rng *rand.Rand, want int,
	started chan<- struct{}) map[string][]message {
	got := make(map[string][]message, len(rooms))
	done := func() bool {
		for _, room := range rooms {
			if len(got[room]) < want {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for first := true; !done(); first = false {
		if time.Now().After(deadline) {
			t.Errorf("gave up with %d/%d/%d messages", len(got[rooms[0]]), len(got[rooms[1]]), len(got[rooms[2]]))
			return got
		}
		order := append([]string(nil), rooms...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		path := "/stream?rooms=" + strings.Join(order, ",")
		if last != "" {
			path += "&last_event_id=" + url.QueryEscape(last)
		}
		c := servers[rng.IntN(len(servers))].openStream(t, path)
		c.awaitOpen()
		if first {
			started <- struct{}{}
		}
		for n := 1 + rng.IntN(40); n > 0 && !done(); n-- {
			m, id := c.nextRoomMessage()
			got[m.Room] = append(got[m.Room], m)
			last = id
		}
		c.Close()
	}
	return got
}
