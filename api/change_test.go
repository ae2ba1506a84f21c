package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/api/auth"
)

// patch edits message id of room with body and header pairs.
func (s *testServer) patch(t testing.TB, room, id, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, http.MethodPatch, "/rooms/"+room+"/messages/"+id, body,
		append([]string{"Content-Type", "application/json"}, header...)...)
}

// decodeMessage decodes a message answer, failing the test unless the
// status is want.
func decodeMessage(t testing.TB, resp *http.Response, body []byte, want int) message {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, body, want)
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return m
}

func TestEditAndDeleteMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	resp, body := s.postJSON(t, "r", `{"text":"helo","user":"ada","metadata":{"k":1}}`)
	posted := decodeMessage(t, resp, body, http.StatusCreated)
	stream := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", posted.ID)
	stream.awaitOpen()

	resp, body = s.patch(t, "r", posted.ID, `{"text":"hello","user":"ada"}`)
	edited := decodeMessage(t, resp, body, http.StatusOK)
	if edited.ID != posted.ID || edited.Seq != posted.Seq || edited.Text != "hello" || edited.Version != 2 ||
		edited.EditedAt == "" || edited.Time != posted.Time || string(edited.Metadata) != `{"k":1}` {
		t.Fatalf("edited = %+v, want the message at version 2 with the new text and the old metadata", edited)
	}
	if got := resp.Header.Get("ETag"); got != `"2"` {
		t.Fatalf("ETag = %q, want \"2\"", got)
	}
	_, got := s.do(t, http.MethodGet, "/rooms/r/messages/"+posted.ID, "")
	if string(got) != string(body) {
		t.Fatalf("GET after edit = %s, want %s", got, body)
	}
	ev := stream.next()
	epoch, _, _ := strings.Cut(posted.ID, "-")
	if ev.Event != "edit" || ev.ID != epoch+"-2" || ev.Data+"\n" != string(body) {
		t.Fatalf("stream event = %+v, want edit at %s-2 with %s", ev, epoch, body)
	}

	resp, body = s.patch(t, "r", posted.ID, `{"text":"hello!","user":"ada","metadata":null}`, "If-Match", `"2"`)
	if m := decodeMessage(t, resp, body, http.StatusOK); m.Version != 3 || m.Metadata != "" {
		t.Fatalf("edit with metadata null = %+v, want version 3 without metadata", m)
	}

	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+posted.ID+"?user=ada", "")
	tomb := decodeMessage(t, resp, body, http.StatusOK)
	if !tomb.Deleted || tomb.Text != "" || tomb.Version != 4 || tomb.Metadata != "" || tomb.Seq != posted.Seq {
		t.Fatalf("tombstone = %+v", tomb)
	}
	if ev := stream.next(); ev.Event != "edit" || ev.ID != epoch+"-3" {
		t.Fatalf("stream event = %+v, want the second edit", ev)
	}
	if ev := stream.next(); ev.Event != "delete" || ev.ID != epoch+"-4" || ev.Data+"\n" != string(body) {
		t.Fatalf("stream event = %+v, want delete at %s-4", ev, epoch)
	}
	live, err := s.Redis.Client().ZCard(t.Context(), "roomcast:{r}:live").Result()
	if err != nil || live != 0 {
		t.Fatalf("live messages after the delete = %d, %v; want 0 (a tombstone is never unread)", live, err)
	}

	// History holds the tombstone in place; an after page lists the changes.
	page := s.historyPage(t, "r", "")
	if len(page.Messages) != 1 || !page.Messages[0].Deleted || page.Position != epoch+"-4" {
		t.Fatalf("latest page = %+v, want the tombstone at position %s-4", page, epoch)
	}
	var after struct {
		Messages []message `json:"messages"`
		Changes  []struct {
			ID      string  `json:"id"`
			Event   string  `json:"event"`
			Message message `json:"message"`
		} `json:"changes"`
		HasMore  bool   `json:"has_more"`
		Position string `json:"position"`
	}
	_, raw := s.do(t, http.MethodGet, "/rooms/r/messages?after="+epoch+"-1&limit=2", "")
	if err := json.Unmarshal(raw, &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Messages) != 0 || len(after.Changes) != 2 || after.Changes[0].ID != epoch+"-2" ||
		after.Changes[0].Message.Version != 2 || !after.HasMore || after.Position != epoch+"-3" {
		t.Fatalf("after page = %s, want the edits at 2 and 3, more, position 3", raw)
	}

	resp, body = s.patch(t, "r", posted.ID, `{"text":"again","user":"ada"}`)
	wantProblem(t, resp, body, http.StatusConflict, "urn:roomcast:problem:message-deleted")
	if got := resp.Header.Get("ETag"); got != `"4"` {
		t.Fatalf("409 ETag = %q, want the tombstone's \"4\"", got)
	}
}

func TestChangeRefusalsStoreNothing(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	resp, body := s.postJSON(t, "r", `{"text":"mine","user":"ada"}`)
	m := decodeMessage(t, resp, body, http.StatusCreated)
	resp, body = s.postJSON(t, "r", `{"text":"gone","user":"ada"}`)
	gone := decodeMessage(t, resp, body, http.StatusCreated)
	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+gone.ID+"?user=ada", "")
	decodeMessage(t, resp, body, http.StatusOK)
	epoch, _, _ := strings.Cut(m.ID, "-")

	for _, tc := range []struct {
		name, method, id, body string
		header                 []string
		status                 int
		typ                    string
	}{
		{name: "another user", method: http.MethodPatch, id: m.ID, body: `{"text":"x","user":"bob"}`, status: 403, typ: typeForbidden},
		{name: "anonymous", method: http.MethodPatch, id: m.ID, body: `{"text":"x"}`, status: 403, typ: typeForbidden},
		{name: "another user deletes", method: http.MethodDelete, id: m.ID + "?user=bob", status: 403, typ: typeForbidden},
		{name: "unknown id", method: http.MethodPatch, id: epoch + "-99", body: `{"text":"x","user":"ada"}`, status: 404, typ: typeNotFound},
		{name: "other epoch", method: http.MethodDelete, id: "zz1-1?user=ada", status: 404, typ: typeNotFound},
		{name: "malformed id", method: http.MethodPatch, id: "x-", body: `{"text":"x","user":"ada"}`, status: 400, typ: "urn:roomcast:problem:invalid-parameter"},
		{name: "empty text", method: http.MethodPatch, id: m.ID, body: `{"text":" ","user":"ada"}`, status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "no text", method: http.MethodPatch, id: m.ID, body: `{"user":"ada"}`, status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "unknown field", method: http.MethodPatch, id: m.ID, body: `{"text":"x","user":"ada","reply_to":"` + m.ID + `"}`, status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "metadata not an object", method: http.MethodPatch, id: m.ID, body: `{"text":"x","user":"ada","metadata":"m"}`, status: 400, typ: "urn:roomcast:problem:invalid-body"},
		{name: "stale If-Match", method: http.MethodPatch, id: m.ID, body: `{"text":"x","user":"ada"}`, header: []string{"If-Match", `"2"`}, status: 412, typ: "urn:roomcast:problem:version-mismatch"},
		{name: "weak If-Match", method: http.MethodPatch, id: m.ID, body: `{"text":"x","user":"ada"}`, header: []string{"If-Match", `W/"1"`}, status: 412, typ: "urn:roomcast:problem:version-mismatch"},
		{name: "stale If-Match on delete", method: http.MethodDelete, id: m.ID + "?user=ada", header: []string{"If-Match", `"5", "7"`}, status: 412, typ: "urn:roomcast:problem:version-mismatch"},
		{name: "edit a tombstone", method: http.MethodPatch, id: gone.ID, body: `{"text":"x","user":"ada"}`, status: 409, typ: "urn:roomcast:problem:message-deleted"},
		{name: "delete a tombstone", method: http.MethodDelete, id: gone.ID + "?user=ada", status: 409, typ: "urn:roomcast:problem:message-deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.roomState(t, "r")
			header := tc.header
			if tc.method == http.MethodPatch {
				header = append([]string{"Content-Type", "application/json"}, header...)
			}
			resp, body := s.do(t, tc.method, "/rooms/r/messages/"+tc.id, tc.body, header...)
			wantProblem(t, resp, body, tc.status, tc.typ)
			if tc.status == http.StatusPreconditionFailed && resp.Header.Get("ETag") != `"1"` {
				t.Fatalf("412 ETag = %q, want the current \"1\"", resp.Header.Get("ETag"))
			}
			s.wantUnchanged(t, "r", before)
		})
	}
	// If-Match with the current version, and with several tags.
	resp, body = s.patch(t, "r", m.ID, `{"text":"x","user":"ada"}`, "If-Match", `"9", "1"`)
	decodeMessage(t, resp, body, http.StatusOK)
}

func TestChangeIdempotent(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	m := s.post(t, "r", "hi") // anonymous, as is the edit
	key := []string{"Idempotency-Key", "edit-1"}
	resp, first := s.patch(t, "r", m.ID, `{"text":"hi!"}`, key...)
	decodeMessage(t, resp, first, http.StatusOK)
	before := s.roomState(t, "r")
	resp, again := s.patch(t, "r", m.ID, `{"text":"hi!"}`, key...)
	if resp.StatusCode != http.StatusOK || string(again) != string(first) || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry = %d %s (replayed %q), want 200 %s replayed", resp.StatusCode, again, resp.Header.Get("Idempotent-Replayed"), first)
	}
	s.wantUnchanged(t, "r", before)
	resp, body := s.patch(t, "r", m.ID, `{"text":"other"}`, key...)
	wantProblem(t, resp, body, http.StatusUnprocessableEntity, "urn:roomcast:problem:idempotency-conflict")
	s.wantUnchanged(t, "r", before)
}

func TestChangeModeration(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{
		Tokens:  verifier(t, auth.Config{Secret: testSecret}),
		APIKeys: testAPIKeys(t),
	})
	ada := hs256(t, "ada", nil)
	bob := hs256(t, "bob", nil)
	mod := hs256(t, "mo", jwt.MapClaims{"rooms": map[string]any{"moderate": []string{"team-*"}}})
	reader := hs256(t, "rea", jwt.MapClaims{"rooms": map[string]any{"read": []string{"*"}}})
	post := func(room string) message {
		resp, body := s.postJSON(t, room, `{"text":"by ada"}`, bearer(ada)...)
		return decodeMessage(t, resp, body, http.StatusCreated)
	}
	m := post("team-1")
	for _, tc := range []struct {
		name   string
		header []string
		room   string
		status int
	}{
		{name: "another subject", header: bearer(bob), room: "team-1", status: http.StatusForbidden},
		{name: "a body naming the author", header: bearer(bob), room: "team-1", status: http.StatusForbidden},
		{name: "read only", header: bearer(reader), room: "team-1", status: http.StatusForbidden},
		{name: "moderator elsewhere", header: bearer(mod), room: "lobby", status: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := m
			if tc.room != "team-1" {
				target = post(tc.room)
			}
			before := s.roomState(t, tc.room)
			body := `{"text":"x"}`
			if tc.name == "a body naming the author" {
				body = `{"text":"x","user":"ada"}`
			}
			resp, answer := s.patch(t, tc.room, target.ID, body, tc.header...)
			wantProblem(t, resp, answer, tc.status, typeForbidden)
			s.wantUnchanged(t, tc.room, before)
		})
	}
	resp, body := s.patch(t, "team-1", m.ID, `{"text":"by ada, fixed"}`, bearer(ada)...)
	decodeMessage(t, resp, body, http.StatusOK)
	resp, body = s.patch(t, "team-1", m.ID, `{"text":"moderated"}`, bearer(mod)...)
	if got := decodeMessage(t, resp, body, http.StatusOK); got.User != "ada" || got.Version != 3 {
		t.Fatalf("moderated = %+v, want ada's message at version 3", got)
	}
	resp, body = s.do(t, http.MethodDelete, "/rooms/team-1/messages/"+m.ID, "", apiKey(testKey)...)
	if got := decodeMessage(t, resp, body, http.StatusOK); !got.Deleted {
		t.Fatalf("deleted with an API key = %+v", got)
	}
}

func TestEditWindow(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{EditWindow: time.Hour, Security: api.Security{APIKeys: testAPIKeys(t)}})
	resp, body := s.postJSON(t, "r", `{"text":"quick","user":"ada"}`)
	m := decodeMessage(t, resp, body, http.StatusCreated)
	resp, body = s.patch(t, "r", m.ID, `{"text":"quick fix","user":"ada"}`)
	fixed := decodeMessage(t, resp, body, http.StatusOK)

	// Make the message two hours old, as Redis stores it.
	rdb := s.Redis.Client()
	old := time.Now().Add(-2 * time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	aged := strings.Replace(strings.TrimSuffix(string(body), "\n"), `"time":"`+fixed.Time+`"`, `"time":"`+old+`"`, 1)
	if err := rdb.ZRemRangeByScore(t.Context(), "roomcast:{r}:history", "1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(t.Context(), "roomcast:{r}:history", redis.Z{Score: 1, Member: aged}).Err(); err != nil {
		t.Fatal(err)
	}

	before := s.roomState(t, "r")
	resp, body = s.patch(t, "r", m.ID, `{"text":"too late","user":"ada"}`)
	wantProblem(t, resp, body, http.StatusForbidden, typeForbidden)
	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+m.ID+"?user=ada", "")
	wantProblem(t, resp, body, http.StatusForbidden, typeForbidden)
	s.wantUnchanged(t, "r", before)
	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+m.ID, "", apiKey(testKey)...)
	if got := decodeMessage(t, resp, body, http.StatusOK); !got.Deleted || got.Version != 3 || got.Time != old {
		t.Fatalf("a moderator's delete past the window = %+v", got)
	}
}

func TestChangesResume(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	a := s.post(t, "r", "a")
	b := s.post(t, "r", "b")
	resp, body := s.patch(t, "r", a.ID, `{"text":"a2"}`)
	decodeMessage(t, resp, body, http.StatusOK)
	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+b.ID, "")
	decodeMessage(t, resp, body, http.StatusOK)
	epoch, _, _ := strings.Cut(a.ID, "-")
	// From before everything: each position once, in order; messages in
	// their latest versions.
	for _, from := range []int{1, 2, 3} {
		c := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", epoch+"-"+strconv.Itoa(from))
		for pos := from + 1; pos <= 4; pos++ {
			ev := c.next()
			want := map[int]string{2: "message", 3: "edit", 4: "delete"}[pos]
			if ev.ID != epoch+"-"+strconv.Itoa(pos) || ev.Event != want {
				t.Fatalf("from %d: event %+v, want %s at %d", from, ev, want, pos)
			}
		}
		c.Close()
	}
}

// TestDeleteLeavesUnreadCounts: a tombstone is not unread, for anyone.
func TestDeleteLeavesUnreadCounts(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	resp, body := s.postJSON(t, "r", `{"text":"one","user":"ada"}`)
	first := decodeMessage(t, resp, body, http.StatusCreated)
	s.postJSON(t, "r", `{"text":"two","user":"ada"}`)
	unread := func() string {
		t.Helper()
		resp, body := s.do(t, http.MethodGet, "/me/rooms?user=bob&rooms=r", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /me/rooms = %d %s", resp.StatusCode, body)
		}
		_, rest, _ := strings.Cut(string(body), `"unread":`)
		n, _, _ := strings.Cut(rest, ",")
		return n
	}
	if got := unread(); got != "2" {
		t.Fatalf("bob's unread = %s, want 2", got)
	}
	resp, body = s.do(t, http.MethodDelete, "/rooms/r/messages/"+first.ID+"?user=ada", "")
	decodeMessage(t, resp, body, http.StatusOK)
	if got := unread(); got != "1" {
		t.Fatalf("bob's unread after a delete = %s, want 1", got)
	}
}
