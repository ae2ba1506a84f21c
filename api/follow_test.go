package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"roomcast/api/client"
)

// TestFollowReconnectsWithoutGapOrDuplicate follows a room with the SDK's
// stream follower through a proxy that drops every connection mid-stream
// while posts go on: the follower reconnects on its own after the
// server's retry delay, resumes with Last-Event-ID, and hands over every
// message once, in order.
func TestFollowReconnectsWithoutGapOrDuplicate(t *testing.T) {
	s := startServer(t, serverConfig{})
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		FlushInterval: -1, // pass events on at once
	})
	t.Cleanup(proxy.Close)
	const room, total = "follow", 30
	first := s.post(t, room, "m0")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events := make(chan client.Event, total)
	var reconnects atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- client.Follow(ctx, proxy.URL, room, client.FollowOptions{
			HTTPClient:  checkedClient,
			LastEventID: first.ID,
			OnReconnect: func(error, time.Duration) { reconnects.Add(1) },
		}, func(ev client.Event) error {
			events <- ev
			return nil
		})
	}()

	next := func() client.Message {
		t.Helper()
		select {
		case ev := <-events:
			m, err := ev.Message()
			if err != nil {
				t.Fatal(err)
			}
			if ev.LastEventID != m.Id {
				t.Fatalf("event position %q, message id %q", ev.LastEventID, m.Id)
			}
			return m
		case err := <-done:
			t.Fatalf("Follow returned %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("no event within 10s (%d reconnects)", reconnects.Load())
		}
		return client.Message{}
	}
	want := 1
	for round := range 3 {
		for i := range 5 {
			s.post(t, room, fmt.Sprintf("m%d", round*10+i+1))
		}
		for range 5 {
			if m := next(); m.Seq != int64(want+1) {
				t.Fatalf("got seq %d (%q), want seq %d: a gap or a duplicate", m.Seq, m.Text, want+1)
			}
			want++
		}
		// Server side close mid-stream, with posts racing the reconnection.
		before := reconnects.Load()
		proxy.CloseClientConnections()
		for i := range 5 {
			s.post(t, room, fmt.Sprintf("m%d", round*10+i+6))
		}
		for range 5 {
			if m := next(); m.Seq != int64(want+1) {
				t.Fatalf("got seq %d (%q), want seq %d: a gap or a duplicate", m.Seq, m.Text, want+1)
			}
			want++
		}
		if reconnects.Load() == before {
			t.Fatalf("round %d: messages arrived without a reconnection", round)
		}
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %s %s", ev.Type, ev.Data)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v after cancel, want context.Canceled", err)
	}
}

// TestFollowEventsAndRefusals checks the follower's typed reset event,
// that an error from the handler ends it, and that a refused stream is a
// *client.StreamError with the server's problem.
func TestFollowEventsAndRefusals(t *testing.T) {
	s := startServer(t, serverConfig{})
	posted := s.post(t, "r", "after a loss")
	stop := errors.New("stop")
	var got []client.Event
	err := client.Follow(t.Context(), s.URL, "r", client.FollowOptions{HTTPClient: checkedClient, LastEventID: "zz-1"},
		func(ev client.Event) error {
			got = append(got, ev)
			if len(got) == 2 {
				return stop
			}
			return nil
		})
	if !errors.Is(err, stop) {
		t.Fatalf("Follow returned %v, want the handler's error", err)
	}
	reset, err := got[0].Reset()
	if err != nil || reset.Reason != "epoch_changed" || reset.LastEventId != "zz-1" {
		t.Fatalf("first event %s %s: reset %+v, %v", got[0].Type, got[0].Data, reset, err)
	}
	if _, err := got[0].Message(); err == nil {
		t.Fatalf("a reset event decoded as a message")
	}
	if m, err := got[1].Message(); err != nil || m.Id != posted.ID {
		t.Fatalf("second event %s %s: %+v, %v", got[1].Type, got[1].Data, m, err)
	}

	for _, tc := range []struct {
		room, lastEventID string
		problem           string
	}{
		{room: "a*b", problem: "urn:roomcast:problem:invalid-room"},
		{room: "r", lastEventID: "not an id", problem: "urn:roomcast:problem:invalid-cursor"},
	} {
		err := client.Follow(t.Context(), s.URL, tc.room, client.FollowOptions{HTTPClient: checkedClient, LastEventID: tc.lastEventID},
			func(client.Event) error { t.Fatal("an event from a refused stream"); return nil })
		var refused *client.StreamError
		if !errors.As(err, &refused) || refused.StatusCode != http.StatusBadRequest || refused.Problem == nil ||
			string(refused.Problem.Type) != tc.problem {
			t.Fatalf("Follow(%q, %q) = %v, want a 400 StreamError of type %s", tc.room, tc.lastEventID, err, tc.problem)
		}
	}
}

// TestFollowEndsOnABan: the follower hands over the banned event, and the
// reconnection that follows is refused for good with the banned problem.
func TestFollowEndsOnABan(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	events := make(chan client.Event, 16)
	done := make(chan error, 1)
	go func() {
		done <- client.Follow(t.Context(), s.URL, "r", client.FollowOptions{HTTPClient: checkedClient, Token: hs256(t, "eve", nil)},
			func(ev client.Event) error { events <- ev; return nil })
	}()
	waitFor(t, "eve's stream to be listed in r", func() bool {
		resp, body := s.do(t, http.MethodGet, "/rooms/r/presence", "", apiKey(testKey)...)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"user":"eve"`)
	})
	resp, body := s.do(t, http.MethodPut, "/rooms/r/bans/eve", `{"reason":"spam"}`, jsonBody(apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	banned := false
	for {
		select {
		case ev := <-events:
			if ev.Type != client.EventBanned {
				continue // eve's own join
			}
			banned = true
			b, err := ev.Ban()
			if err != nil || b.Room != "r" || b.User != "eve" || b.Reason == nil || *b.Reason != "spam" {
				t.Fatalf("banned event %s: %+v, %v", ev.Data, b, err)
			}
		case err := <-done:
			var refused *client.StreamError
			if !errors.As(err, &refused) || refused.StatusCode != http.StatusForbidden || refused.Problem == nil ||
				string(refused.Problem.Type) != typeBanned {
				t.Fatalf("Follow returned %v, want a 403 StreamError of type banned", err)
			}
			// Every event was sent before Follow returned.
			for len(events) > 0 {
				banned = banned || (<-events).Type == client.EventBanned
			}
			if !banned {
				t.Fatal("Follow ended without handing over the banned event")
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("Follow still running 10s after the ban")
		}
	}
}
