package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"roomcast/api/client"
)

// TestGeneratedClient talks to the server only through the client that
// oapi-codegen generated from openapi.yaml: it posts, pages history both
// ways, gets a typed problem, and reads live and resumed events from the
// stream the client opens. Its HTTP client checks every exchange against
// the spec as well.
func TestGeneratedClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	c, err := client.NewClientWithResponses(s.URL, client.WithHTTPClient(checkedClient))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const room = "sdk"

	live := openClientStream(t, c, room, nil)
	live.awaitOpen()
	var posted []client.Message
	for i := range 5 {
		key := fmt.Sprintf("key-%d", i)
		resp, err := c.PostMessageWithResponse(ctx, room, &client.PostMessageParams{IdempotencyKey: &key},
			client.NewMessage{Text: fmt.Sprintf("m%d", i), User: ptr("ada")})
		if err != nil {
			t.Fatal(err)
		}
		if resp.JSON201 == nil {
			t.Fatalf("post: status %d, body %s", resp.StatusCode(), resp.Body)
		}
		posted = append(posted, *resp.JSON201)
	}
	if got := posted[4]; got.Seq != 5 || got.Room != room || got.User != "ada" || got.Text != "m4" || got.Time.IsZero() {
		t.Fatalf("fifth message = %+v", got)
	}

	replay, err := c.PostMessageWithResponse(ctx, room, &client.PostMessageParams{IdempotencyKey: ptr("key-0")},
		client.NewMessage{Text: "m0", User: ptr("ada")})
	if err != nil {
		t.Fatal(err)
	}
	if replay.JSON201 == nil || replay.JSON201.Id != posted[0].Id || replay.Headers201.IdempotentReplayed == nil ||
		*replay.Headers201.IdempotentReplayed != "true" {
		t.Fatalf("retried post: status %d, body %s, headers %+v", replay.StatusCode(), replay.Body, replay.Headers201)
	}

	for _, want := range posted {
		if got := nextClientMessage(t, live); !sameMessage(got, want) {
			t.Fatalf("streamed %+v, want %+v", got, want)
		}
	}

	for _, tc := range []struct {
		name    string
		params  client.ListMessagesParams
		want    []client.Message
		hasMore bool
	}{
		{name: "newest", params: client.ListMessagesParams{Limit: ptr(2)}, want: posted[3:5], hasMore: true},
		{name: "before", params: client.ListMessagesParams{Limit: ptr(2), Before: &posted[3].Id}, want: posted[1:3], hasMore: true},
		{name: "before, to the start", params: client.ListMessagesParams{Limit: ptr(2), Before: &posted[1].Id}, want: posted[:1]},
		{name: "after", params: client.ListMessagesParams{Limit: ptr(3), After: &posted[0].Id}, want: posted[1:4], hasMore: true},
		{name: "after, to the end", params: client.ListMessagesParams{After: &posted[3].Id}, want: posted[4:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.ListMessagesWithResponse(ctx, room, &tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if resp.JSON200 == nil {
				t.Fatalf("status %d, body %s", resp.StatusCode(), resp.Body)
			}
			page := resp.JSON200
			if len(page.Messages) != len(tc.want) || page.HasMore != tc.hasMore || page.Reset != nil {
				t.Fatalf("page = %s, want %d messages and has_more %v", resp.Body, len(tc.want), tc.hasMore)
			}
			for i, want := range tc.want {
				if !sameMessage(page.Messages[i], want) {
					t.Fatalf("message %d = %+v, want %+v", i, page.Messages[i], want)
				}
			}
		})
	}

	bad, err := c.ListMessagesWithResponse(ctx, room, &client.ListMessagesParams{Before: ptr("not-an-id")})
	if err != nil {
		t.Fatal(err)
	}
	if p := bad.ApplicationproblemJSON400; p == nil || p.Type != client.UrnRoomcastProblemInvalidCursor || p.Status != http.StatusBadRequest {
		t.Fatalf("bad cursor: status %d, body %s", bad.StatusCode(), bad.Body)
	}

	for name, params := range map[string]*client.StreamRoomParams{
		"header": {LastEventID: &posted[2].Id},
		"query":  {LastEventIDQuery: &posted[2].Id},
	} {
		t.Run("resume by "+name, func(t *testing.T) {
			resumed := openClientStream(t, c, room, params)
			resumed.awaitOpen()
			for _, want := range posted[3:] {
				if got := nextClientMessage(t, resumed); !sameMessage(got, want) {
					t.Fatalf("replayed %+v, want %+v", got, want)
				}
			}
		})
	}
}

// openClientStream opens a room's stream with the generated client, which
// hands back the unread response, and reads its lines with the harness's
// event reader.
func openClientStream(t testing.TB, c *client.ClientWithResponses, room string, params *client.StreamRoomParams) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.StreamRoom(ctx, room, params)
	if err != nil {
		cancel()
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		t.Fatalf("open stream: status %d", resp.StatusCode)
	}
	sc := &sseClient{t: t, resp: resp, events: make(chan event, 4096), cancel: cancel}
	go sc.read()
	t.Cleanup(sc.Close)
	return sc
}

// nextClientMessage decodes the next "message" event into the generated
// Message type.
func nextClientMessage(t testing.TB, sc *sseClient) client.Message {
	t.Helper()
	ev := sc.next()
	var m client.Message
	if ev.Event != "message" {
		t.Fatalf("event = %q (data %s), want message", ev.Event, ev.Data)
	}
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		t.Fatalf("event data %q: %v", ev.Data, err)
	}
	if m.Id != ev.ID {
		t.Fatalf("event id %q, data id %q", ev.ID, m.Id)
	}
	return m
}

func sameMessage(a, b client.Message) bool {
	return a.Id == b.Id && a.Seq == b.Seq && a.Room == b.Room && a.User == b.User && a.Text == b.Text && a.Time.Equal(b.Time)
}

func ptr[T any](v T) *T { return &v }
