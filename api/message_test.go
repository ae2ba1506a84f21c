package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// roomState is every Redis key of room with its serialised value, to show
// that a refused request stored nothing.
func (s *testServer) roomState(t testing.TB, room string) map[string]string {
	t.Helper()
	rdb := s.Redis.Client()
	keys, err := rdb.Keys(t.Context(), "roomcast:{"+room+"}*").Result()
	if err != nil {
		t.Fatal(err)
	}
	state := make(map[string]string, len(keys))
	for _, k := range keys {
		dump, err := rdb.Dump(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("DUMP %s: %v", k, err)
		}
		state[k] = dump
	}
	return state
}

// wantUnchanged fails unless room's keys are as in before.
func (s *testServer) wantUnchanged(t testing.TB, room string, before map[string]string) {
	t.Helper()
	after := s.roomState(t, room)
	if len(after) != len(before) {
		t.Fatalf("keys of room %s: %d after a refusal, %d before", room, len(after), len(before))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("key %s changed by a refusal", k)
		}
	}
}

func TestGetMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{HistoryMax: 3})
	resp, posted := s.postJSON(t, "lobby", `{"text":"first","user":"ada"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST = %d %s", resp.StatusCode, posted)
	}
	var m message
	if err := json.Unmarshal(posted, &m); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(posted), `,"version":1`) {
		t.Fatalf("posted message %s has no version 1", posted)
	}

	t.Run("OK", func(t *testing.T) {
		resp, body := s.do(t, http.MethodGet, "/rooms/lobby/messages/"+m.ID, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d %s", resp.StatusCode, body)
		}
		if string(body) != string(posted) {
			t.Fatalf("GET body = %s, want the posted bytes %s", body, posted)
		}
		if got := resp.Header.Get("ETag"); got != `"1"` {
			t.Fatalf("ETag = %q, want \"1\"", got)
		}
	})
	epoch, _, _ := strings.Cut(m.ID, "-")
	for _, tc := range []struct {
		name, id string
		want     int
	}{
		{name: "never posted", id: epoch + "-99", want: http.StatusNotFound},
		{name: "other epoch", id: "zz1-1", want: http.StatusNotFound},
		{name: "unknown room", id: m.ID, want: http.StatusNotFound},
		{name: "malformed", id: "nope", want: http.StatusBadRequest},
		{name: "zero seq", id: epoch + "-0", want: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := "lobby"
			if tc.name == "unknown room" {
				room = "elsewhere"
			}
			resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/messages/"+tc.id, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s = %d %s, want %d", tc.id, resp.StatusCode, body, tc.want)
			}
		})
	}
	t.Run("trimmed", func(t *testing.T) {
		s.postMany(t, "lobby", 3)
		resp, body := s.do(t, http.MethodGet, "/rooms/lobby/messages/"+m.ID, "")
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET trimmed %s = %d %s, want 404", m.ID, resp.StatusCode, body)
		}
	})
}

func TestPostMetadataAndReply(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	first := s.post(t, "r", "question")

	t.Run("OK", func(t *testing.T) {
		body := `{"text":"answer","reply_to":"` + first.ID + `","metadata":{ "b": [1, 2.50, "\u00e9"], "a": {"version": 7} }}`
		resp, posted := s.postJSON(t, "r", body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST = %d %s", resp.StatusCode, posted)
		}
		want := `,"version":1,"reply_to":"` + first.ID + `","metadata":{"b":[1,2.50,"\u00e9"],"a":{"version":7}}}`
		if !strings.HasSuffix(string(posted), want+"\n") {
			t.Fatalf("posted %s, want it to end in %s", posted, want)
		}
		var m message
		if err := json.Unmarshal(posted, &m); err != nil {
			t.Fatal(err)
		}
		_, got := s.do(t, http.MethodGet, "/rooms/r/messages/"+m.ID, "")
		if string(got) != string(posted) {
			t.Fatalf("GET = %s, want %s", got, posted)
		}
		page, _ := s.history(t, "r", "")
		if string(page[len(page)-1])+"\n" != string(posted) {
			t.Fatalf("history holds %s, want %s", page[len(page)-1], posted)
		}
	})

	epoch, _, _ := strings.Cut(first.ID, "-")
	for _, tc := range []struct {
		name, room, body string
	}{
		{name: "metadata not an object", room: "r", body: `{"text":"x","metadata":[1]}`},
		{name: "metadata null", room: "r", body: `{"text":"x","metadata":null}`},
		{name: "metadata too large", room: "r", body: `{"text":"x","metadata":{"k":"` + strings.Repeat("m", 2048) + `"}}`},
		{name: "reply_to not an id", room: "r", body: `{"text":"x","reply_to":"nope"}`},
		{name: "reply_to not a string", room: "r", body: `{"text":"x","reply_to":1}`},
		{name: "reply_to unknown", room: "r", body: `{"text":"x","reply_to":"` + epoch + `-999"}`},
		{name: "reply_to other epoch", room: "r", body: `{"text":"x","reply_to":"zz1-1"}`},
		{name: "reply_to in a new room", room: "fresh", body: `{"text":"x","reply_to":"` + first.ID + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.roomState(t, tc.room)
			resp, body := s.postJSON(t, tc.room, tc.body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("POST %s = %d %s, want 400", tc.body, resp.StatusCode, body)
			}
			if !strings.Contains(string(body), "urn:roomcast:problem:invalid-body") {
				t.Fatalf("problem %s, want invalid-body", body)
			}
			s.wantUnchanged(t, tc.room, before)
		})
	}

	t.Run("idempotent with metadata", func(t *testing.T) {
		key := []string{"Idempotency-Key", "k1"}
		resp, a := s.postJSON(t, "r", `{"text":"x","metadata":{"n":1}}`, key...)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST = %d %s", resp.StatusCode, a)
		}
		resp, b := s.postJSON(t, "r", `{"text":"x","metadata":{"n":1}}`, key...)
		if resp.StatusCode != http.StatusCreated || string(a) != string(b) {
			t.Fatalf("retry = %d %s, want 201 %s", resp.StatusCode, b, a)
		}
		resp, c := s.postJSON(t, "r", `{"text":"x","metadata":{"n":2}}`, key...)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("same key, other metadata = %d %s, want 422", resp.StatusCode, c)
		}
	})
}
