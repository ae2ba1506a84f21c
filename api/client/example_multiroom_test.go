package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/client"
	"roomcast/api/sse"
	"roomcast/broker"
	"roomcast/broker/stream"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// ExampleClient_StreamRooms follows three rooms on one multi-room stream
// and, when the connection drops, reconnects from the last message's id (a
// composite cursor), so no message of any room is missed or repeated. Run
// a server first with `go run .`. TestFollowRooms runs followRooms against
// a real server whose connections it cuts.
func ExampleClient_StreamRooms() {
	c, err := client.NewClient("http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	err = followRooms(context.Background(), c, []string{"lobby", "support", "random"}, "",
		func(m client.Message) error {
			fmt.Println(m.Room, m.User, m.Text)
			return nil
		})
	log.Fatal(err)
}

// followRooms calls handle with each message of rooms, from after the
// composite cursor last ("" for now on), until ctx ends or handle fails. A
// stream that breaks is opened again from the last id seen; a refusal
// (4xx) ends it.
func followRooms(ctx context.Context, c *client.Client, rooms []string, last string, handle func(client.Message) error) error {
	for {
		err := followOnce(ctx, c, rooms, &last, handle)
		var stop permanent
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &stop):
			return stop.error
		}
		select { // the server's retry: is 1 s by default
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// permanent is an error that reconnecting cannot cure.
type permanent struct{ error }

// followOnce reads one stream until it breaks, keeping *last at the id of
// the last message handed to handle. Other events (join, leave, typing,
// reset) carry no id and are skipped here.
func followOnce(ctx context.Context, c *client.Client, rooms []string, last *string, handle func(client.Message) error) error {
	params := &client.StreamRoomsParams{Rooms: strings.Join(rooms, ",")}
	if *last != "" {
		params.LastEventIDQuery = last
	}
	resp, err := c.StreamRooms(ctx, params)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("stream: %s", resp.Status)
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return permanent{err}
		}
		return err
	}
	var id, event, data string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ": ")
		switch {
		case line == "" && event == "message":
			var m client.Message
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				return permanent{fmt.Errorf("message %q: %w", data, err)}
			}
			if err := handle(m); err != nil {
				return permanent{err}
			}
			*last = id
			id, event, data = "", "", ""
		case line == "":
			id, event, data = "", "", ""
		case field == "id":
			id = value
		case field == "event":
			event = value
		case field == "data":
			data += value
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream ended")
}

// followRooms delivers every message of three rooms exactly once, in order
// within each room, while the proxy in front of the server cuts its
// connections twice.
func TestFollowRooms(t *testing.T) {
	front, direct := startServer(t)
	c, err := client.NewClient(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	poster, err := client.NewClientWithResponses(direct.URL)
	if err != nil {
		t.Fatal(err)
	}
	rooms := []string{"a", "b", "c"}
	got := make(chan client.Message, 100)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- followRooms(ctx, c, rooms, "", func(m client.Message) error {
			got <- m
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("followRooms ended with %v, want context.Canceled", err)
		}
	})

	// The stream starts live: post to a until the follower sees a message.
	// What it sees from then on is expected, once each.
	want := map[string][]string{}
	var warmUps []string
	for len(want["a"]) == 0 {
		warmUps = append(warmUps, post(t, poster, "a", "warm-up").Id)
		select {
		case seen := <-got:
			want["a"] = warmUps[slices.Index(warmUps, seen.Id):]
		case <-time.After(200 * time.Millisecond):
		}
	}
	for i := range 30 {
		if i == 10 || i == 20 {
			front.CloseClientConnections()
		}
		room := rooms[i%len(rooms)]
		want[room] = append(want[room], post(t, poster, room, fmt.Sprintf("m%d", i)).Id)
	}

	seen := map[string][]string{}
	total := 0
	for _, ids := range want {
		total += len(ids)
	}
	for n := len(want["a"][:1]); n < total; n++ {
		select {
		case m := <-got:
			seen[m.Room] = append(seen[m.Room], m.Id)
		case <-time.After(30 * time.Second):
			t.Fatalf("after %d of %d messages, no more came: %v", n, total, seen)
		}
	}
	seen["a"] = append([]string{want["a"][0]}, seen["a"]...)
	for _, room := range rooms {
		if !slices.Equal(seen[room], want[room]) {
			t.Fatalf("room %s: followed %v, want %v", room, seen[room], want[room])
		}
	}
	select {
	case m := <-got:
		t.Fatalf("an extra message: %+v", m)
	default:
	}
}

// post posts text to room and returns the stored message.
func post(t *testing.T, c *client.ClientWithResponses, room, text string) client.Message {
	t.Helper()
	user := "ada"
	resp, err := c.PostMessageWithResponse(t.Context(), room, nil, client.NewMessage{Text: text, User: &user})
	if err != nil {
		t.Fatalf("post to %s: %v", room, err)
	}
	if resp.JSON201 == nil {
		t.Fatalf("post to %s: %s %s", room, resp.Status(), resp.Body)
	}
	return *resp.JSON201
}

// startServer starts roomcast on a real Redis behind two test servers: one
// whose connections the test cuts, and one that is left alone. They stop
// when the test ends.
func startServer(t *testing.T) (front, direct *httptest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1})
	keys := redisscripts.NewKeys("roomcast:")
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
	frames := sse.Frames{SSERetry: time.Second}
	hub := broker.New(rdb, broker.Options{Keys: keys, History: store, Encoder: frames, ClientBuffer: 256,
		DeliveryCheckInterval: time.Second, RedisTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	if err := hub.WaitStarted(t.Context()); err != nil {
		t.Fatalf("hub did not start: %v", err)
	}
	e := echo.New()
	engine := stream.New(stream.Options{Rooms: hub, Frames: frames, HeartbeatInterval: 15 * time.Second,
		StreamWriteTimeout: 5 * time.Second})
	api.New(api.Options{Store: store, Streams: engine, Frames: frames, Events: store, MaxMessageBytes: 4096}).Register(e)
	front, direct = httptest.NewServer(e), httptest.NewServer(e)
	t.Cleanup(func() {
		cancel()
		<-done
		front.Close()
		direct.Close()
		rdb.Close()
	})
	return front, direct
}
