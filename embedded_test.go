package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEmbeddedRedisExpiresKeys runs roomcast on the embedded default and
// proves that its keys expire as on Redis: the typing throttle lets a
// user's typing through again after its 2 s window, a room is gone after
// ROOM_TTL and an Idempotency-Key is forgotten after IDEMPOTENCY_TTL.
func TestEmbeddedRedisExpiresKeys(t *testing.T) {
	t.Parallel()
	in := startRun(t, "ROOM_TTL=1s", "IDEMPOTENCY_TTL=1s", "POST_RATE=0")

	t.Run("typing repeats after its window", func(t *testing.T) {
		stream := in.openLines(t, "/rooms/typing/stream")
		if line, _ := stream.next(t); !strings.HasPrefix(line, "retry: ") {
			t.Fatalf("stream began with %q, want a retry line", line)
		}
		// Typing is posted on every tick, as a page does on every
		// keystroke; the server lets one event through per window.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		var seen []time.Time
		for len(seen) < 2 {
			select {
			case line, ok := <-stream.lines:
				if !ok {
					t.Fatal("the stream ended")
				}
				if line == "event: typing" {
					seen = append(seen, time.Now())
				}
			case <-tick.C:
				if resp, body := in.request(t, http.MethodPost, "/rooms/typing/typing", `{"user":"ada"}`,
					"Content-Type", "application/json"); resp.StatusCode != http.StatusNoContent {
					t.Fatalf("POST typing = %d %s", resp.StatusCode, body)
				}
			case <-deadline:
				t.Fatalf("%d typing events within 10s of typing every 100ms, want 2: the throttle key never expires", len(seen))
			}
		}
		if gap := seen[1].Sub(seen[0]); gap < time.Second {
			t.Fatalf("typing events %v apart, want about 2s: the throttle let typing through early", gap)
		}
	})

	t.Run("rooms expire after ROOM_TTL", func(t *testing.T) {
		in.postMessage(t, "expiring", "soon gone")
		pollUntil(t, "the room to expire after ROOM_TTL=1s", func() bool {
			resp, body := in.request(t, http.MethodGet, "/rooms/expiring/messages", "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("history = %d %s", resp.StatusCode, body)
			}
			return string(body) == `{"messages":[],"has_more":false}`+"\n"
		})
	})

	t.Run("Idempotency-Keys expire after IDEMPOTENCY_TTL", func(t *testing.T) {
		post := func(text string) *http.Response {
			resp, body := in.request(t, http.MethodPost, "/rooms/idem/messages", `{"text":"`+text+`"}`,
				"Content-Type", "application/json", "Idempotency-Key", "k1")
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("POST = %d %s", resp.StatusCode, body)
			}
			return resp
		}
		post("first")
		// The same key with another text is a 422 while the key is
		// remembered, and a new message once it is forgotten.
		pollUntil(t, "the Idempotency-Key to expire after IDEMPOTENCY_TTL=1s", func() bool {
			resp := post("second")
			return resp.StatusCode == http.StatusCreated && resp.Header.Get("Idempotent-Replayed") == ""
		})
	})
}

// pollUntil checks cond every 50ms until it holds, failing the test after
// 10s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestEmbeddedRedisBans: the ban and revocation scripts and the control
// watcher work on the embedded default too (miniredis runs gopher-lua,
// not Redis's Lua).
func TestEmbeddedRedisBans(t *testing.T) {
	t.Parallel()
	in := startRun(t, "POST_RATE=0")
	stream := in.openLines(t, "/rooms/lobby/stream?user=eve")
	if line, _ := stream.next(t); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("stream began with %q, want a retry line", line)
	}
	json := []string{"Content-Type", "application/json"}
	if resp, body := in.request(t, http.MethodPut, "/rooms/lobby/bans/eve", `{"reason":"spam"}`, json...); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT ban = %d %s", resp.StatusCode, body)
	}
	for {
		line, ok := stream.next(t)
		if !ok {
			t.Fatal("the stream ended without a banned event")
		}
		if line == "event: banned" {
			break
		}
	}
	for {
		if _, ok := stream.next(t); !ok {
			break // ended
		}
	}
	if resp, body := in.request(t, http.MethodPost, "/rooms/lobby/messages", `{"text":"hi","user":"eve"}`, json...); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("banned user's post = %d %s, want 403", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodGet, "/rooms/lobby/bans", ""); resp.StatusCode != http.StatusOK ||
		!strings.Contains(string(body), `"user":"eve"`) {
		t.Fatalf("GET bans = %d %s, want eve's ban", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodDelete, "/rooms/lobby/bans/eve", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE ban = %d %s", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPost, "/admin/tokens/revoke", `{"jti":"t-1"}`, json...); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPost, "/admin/tokens/revoke", `{"jti":"t-1"}`, json...); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke again = %d %s", resp.StatusCode, body)
	}
}

// TestEmbeddedRedisEditsAndDeletes runs the change scripts on the embedded
// default (miniredis runs gopher-lua, not Redis's Lua): a reply with
// metadata, an edit with If-Match, a refused edit, the delete, and the
// after= page that lists both changes, as on Redis.
func TestEmbeddedRedisEditsAndDeletes(t *testing.T) {
	t.Parallel()
	in := startRun(t, "POST_RATE=0")
	json := []string{"Content-Type", "application/json"}
	first := in.postMessage(t, "edits", "question")
	id := strings.SplitN(string(first), `"`, 5)[3] // {"id":"<id>",…
	resp, body := in.request(t, http.MethodPost, "/rooms/edits/messages",
		`{"text":"helo","user":"ann","reply_to":"`+id+`","metadata":{"k":[1,2]}}`, json...)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST reply = %d %s", resp.StatusCode, body)
	}
	epoch, _, _ := strings.Cut(id, "-")
	reply := epoch + "-2"
	resp, body = in.request(t, http.MethodPatch, "/rooms/edits/messages/"+reply, `{"text":"hello","user":"ann"}`,
		append(json, "If-Match", `"1"`)...)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"text":"hello"`) ||
		!strings.HasSuffix(string(body), `,"version":2,"edited_at":"`+editedAt(body)+`","reply_to":"`+id+`","metadata":{"k":[1,2]}}`+"\n") {
		t.Fatalf("PATCH = %d %s", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPatch, "/rooms/edits/messages/"+reply, `{"text":"mine now","user":"bob"}`,
		json...); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PATCH by another user = %d %s, want 403", resp.StatusCode, body)
	}
	resp, body = in.request(t, http.MethodDelete, "/rooms/edits/messages/"+reply+"?user=ann", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"text":"","time":`) ||
		!strings.Contains(string(body), `"version":3`) || !strings.Contains(string(body), `"deleted":true`) {
		t.Fatalf("DELETE = %d %s", resp.StatusCode, body)
	}
	resp, body = in.request(t, http.MethodGet, "/rooms/edits/messages?after="+reply, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"changes":[{"id":"`+epoch+`-3","event":"edit"`) ||
		!strings.Contains(string(body), `{"id":"`+epoch+`-4","event":"delete"`) || !strings.Contains(string(body), `"position":"`+epoch+`-4"`) {
		t.Fatalf("after page = %d %s", resp.StatusCode, body)
	}
}

// editedAt is the edited_at of a message's JSON, or "".
func editedAt(message []byte) string {
	_, rest, _ := strings.Cut(string(message), `"edited_at":"`)
	at, _, _ := strings.Cut(rest, `"`)
	return at
}

// TestEmbeddedRedisRooms runs the settings and the directory on the
// embedded default: read-only and slow mode in the post script under
// gopher-lua, and the directory's ZRANGE BYSCORE REV on miniredis.
func TestEmbeddedRedisRooms(t *testing.T) {
	t.Parallel()
	in := startRun(t, "POST_RATE=0")
	json := []string{"Content-Type", "application/json"}
	for _, room := range []string{"one", "two"} {
		if resp, body := in.request(t, http.MethodPost, "/rooms/"+room+"/messages", `{"text":"hi","user":"ann"}`, json...); resp.StatusCode != http.StatusCreated {
			t.Fatalf("post to %s = %d %s", room, resp.StatusCode, body)
		}
	}
	if resp, body := in.request(t, http.MethodPut, "/rooms/one", `{"title":"One","slow_mode":60}`, json...); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPost, "/rooms/one/messages", `{"text":"again","user":"bob"}`, json...); resp.StatusCode != http.StatusCreated {
		t.Fatalf("bob's first post in slow mode = %d %s", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPost, "/rooms/one/messages", `{"text":"too soon","user":"bob"}`, json...); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("bob's second post in slow mode = %d %s, want 429", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPut, "/rooms/two", `{"read_only":true}`, json...); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", resp.StatusCode, body)
	}
	if resp, body := in.request(t, http.MethodPost, "/rooms/two/messages", `{"text":"no","user":"ann"}`, json...); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("post to a read-only room = %d %s, want 403", resp.StatusCode, body)
	}
	resp, body := in.request(t, http.MethodGet, "/rooms?limit=1", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"room":"one"`) || !strings.Contains(string(body), `"title":"One"`) ||
		!strings.Contains(string(body), `"next":`) {
		t.Fatalf("GET /rooms = %d %s, want room one first, with its title, and a next page", resp.StatusCode, body)
	}
}
