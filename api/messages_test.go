package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"roomcast/broker/chat"
)

// postJSON posts body as JSON to room with optional header pairs and
// returns the response and its body.
func (s *testServer) postJSON(t testing.TB, room, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, http.MethodPost, "/rooms/"+room+"/messages", body,
		append([]string{"Content-Type", "application/json"}, header...)...)
}

// history returns the raw messages of a history page and its has_more.
func (s *testServer) history(t testing.TB, room, query string) ([]json.RawMessage, bool) {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/messages"+query, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET history %s%s: %d %s", room, query, resp.StatusCode, body)
	}
	var page struct {
		Messages []json.RawMessage `json:"messages"`
		HasMore  bool              `json:"has_more"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("history body %s: %v", body, err)
	}
	return page.Messages, page.HasMore
}

var rfc3339Millis = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestPostReturnsStoredMessage(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	redisBefore, err := s.Redis.Client().Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	resp, body := s.postJSON(t, "lobby", `{"text":"hello","user":"ann"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", got)
	}
	if resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("Idempotent-Replayed set on a first post")
	}
	var m message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	id, err := chat.ParseID(m.ID)
	if err != nil {
		t.Fatalf("id %q: %v", m.ID, err)
	}
	if m.Seq != 1 || id.Seq != 1 || m.Room != "lobby" || m.User != "ann" || m.Text != "hello" {
		t.Fatalf("message = %+v, want seq 1 in lobby by ann saying hello", m)
	}
	if !rfc3339Millis.MatchString(m.Time) {
		t.Fatalf("time %q is not RFC 3339 UTC with 3 fractional digits", m.Time)
	}
	at, err := time.Parse(time.RFC3339, m.Time)
	if err != nil {
		t.Fatalf("time %q: %v", m.Time, err)
	}
	// The time comes from the Redis clock: not before the TIME read just
	// before the post, and close to this machine's clock.
	if at.Before(redisBefore.Truncate(time.Millisecond)) || at.Sub(redisBefore) > 5*time.Second {
		t.Fatalf("time %v, Redis TIME before the post %v", at, redisBefore)
	}
	if d := time.Since(at); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("time %v is %v away from now", at, d)
	}
	if line, ok := bytes.CutSuffix(body, []byte("\n")); !ok || bytes.ContainsAny(line, "\r\n") {
		t.Fatalf("answer %q is not one line of JSON ended by a newline", body)
	}

	second := s.post(t, "lobby", "again")
	if second.Seq != 2 || second.User != "anonymous" {
		t.Fatalf("second message = %+v, want seq 2 by anonymous", second)
	}
	if next, err := chat.ParseID(second.ID); err != nil || !next.Follows(id) {
		t.Fatalf("second id %q does not follow %q", second.ID, m.ID)
	}
}

// TestMessageBytesAreIdentical checks that POST, history and stream serve
// the very same bytes for every message, whatever its text holds.
func TestMessageBytesAreIdentical(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	c := s.openStream(t, "/rooms/r/stream")
	c.awaitOpen()
	texts := []string{
		"plain",
		"quotes \" and \\ backslash",
		"line\nbreaks\r\nand\rreturns",
		"tab\tand \u0001 control",
		"html <script>&amp;</script>",
		"unicode é ✓ 🎉 \u2028\u2029",
		"data: injected\n\nevent: evil",
		strings.Repeat("x", 4096),
	}
	var posted [][]byte
	for i, text := range texts {
		body, err := json.Marshal(map[string]string{"text": text, "user": fmt.Sprintf("user %d ✓", i)})
		if err != nil {
			t.Fatal(err)
		}
		resp, got := s.postJSON(t, "r", string(body))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("post %q: %d %s", text, resp.StatusCode, got)
		}
		var m message
		if err := json.Unmarshal(got, &m); err != nil || m.Text != text {
			t.Fatalf("post %q stored %s (%v)", text, got, err)
		}
		posted = append(posted, bytes.TrimSuffix(got, []byte("\n"))) // the answer's final newline is not stored
	}
	stored, _ := s.history(t, "r", "?limit=200")
	if len(stored) != len(posted) {
		t.Fatalf("history has %d messages, want %d", len(stored), len(posted))
	}
	for i, want := range posted {
		if !bytes.Equal(stored[i], want) {
			t.Fatalf("history message %d = %s, POST returned %s", i, stored[i], want)
		}
		ev := c.next()
		if ev.Event != "message" || ev.Data != string(want) {
			t.Fatalf("streamed %+v, POST returned %s", ev, want)
		}
		if id, _ := chat.IDOf(want); ev.ID != id.String() {
			t.Fatalf("event id %q, message id %v", ev.ID, id)
		}
	}
}

func TestPostBadBody(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{MaxMessageBytes: 32})
	tests := []struct {
		name string
		body string
	}{
		{name: "missing text", body: `{"user":"ann"}`},
		{name: "empty object", body: `{}`},
		{name: "empty text", body: `{"text":""}`},
		{name: "text of one space", body: `{"text":" "}`},
		{name: "text of ASCII white space", body: `{"text":" \t\r\n\u000b\f"}`},
		{name: "text of Unicode white space", body: `{"text":"\u00a0\u0085\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"}`},
		{name: "null text", body: `{"text":null}`},
		{name: "text one byte too long", body: `{"text":"` + strings.Repeat("x", 33) + `"}`},
		{name: "multi-byte text one byte too long", body: `{"text":"` + strings.Repeat("é", 16) + `x"}`},
		{name: "escaped text one byte too long", body: `{"text":"` + strings.Repeat(`\u00e9`, 16) + `x"}`},
		{name: "invalid UTF-8 in text", body: "{\"text\":\"a\xffb\"}"},
		{name: "invalid UTF-8 in user", body: "{\"text\":\"a\",\"user\":\"\xc3\"}"},
		{name: "overlong UTF-8", body: "{\"text\":\"\xc0\xaf\"}"},
		{name: "unknown field", body: `{"text":"a","room":"b"}`},
		{name: "unknown field differing in case", body: `{"TEXT":"a"}`},
		{name: "text twice in other case", body: `{"text":"a","Text":"b"}`},
		{name: "trailing object", body: `{"text":"a"}{"text":"b"}`},
		{name: "trailing garbage", body: `{"text":"a"}x`},
		{name: "trailing comma", body: `{"text":"a"},`},
		{name: "unterminated", body: `{"text":"a"`},
		{name: "empty body", body: ``},
		{name: "whitespace body", body: " \n"},
		{name: "null", body: `null`},
		{name: "array", body: `[{"text":"a"}]`},
		{name: "string", body: `"a"`},
		{name: "number", body: `42`},
		{name: "text number", body: `{"text":1}`},
		{name: "text bool", body: `{"text":true}`},
		{name: "text array", body: `{"text":["a"]}`},
		{name: "text object", body: `{"text":{"a":1}}`},
		{name: "user number", body: `{"text":"a","user":7}`},
		{name: "user null", body: `{"text":"a","user":null}`},
		{name: "user empty", body: `{"text":"a","user":""}`},
		{name: "user 65 characters", body: `{"text":"a","user":"` + strings.Repeat("u", 65) + `"}`},
		{name: "user 65 multi-byte characters", body: `{"text":"a","user":"` + strings.Repeat("ü", 65) + `"}`},
		{name: "user newline", body: `{"text":"a","user":"a\nb"}`},
		{name: "user tab", body: `{"text":"a","user":"a\tb"}`},
		{name: "user NUL", body: `{"text":"a","user":"a\u0000b"}`},
		{name: "user DEL", body: `{"text":"a","user":"a\u007fb"}`},
		{name: "user bidi override", body: `{"text":"a","user":"a\u202eb"}`},
		{name: "user line separator", body: `{"text":"a","user":"a\u2028b"}`},
		{name: "lone high surrogate", body: `{"text":"\ud800"}`},
		{name: "lone low surrogate", body: `{"text":"a\udc00b"}`},
		{name: "high surrogate before a character", body: `{"text":"\ud83dx"}`},
		{name: "high surrogate before a non-surrogate escape", body: `{"text":"\ud83d\u0041"}`},
		{name: "two high surrogates", body: `{"text":"\ud83d\ud83d"}`},
		{name: "surrogates in reverse order", body: `{"text":"\ude00\ud83d"}`},
		{name: "high surrogate at the end", body: `{"text":"ok\uD83D"}`},
		{name: "lone surrogate in user", body: `{"text":"a","user":"x\udfff"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.postJSON(t, "r", tt.body)
			p := wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidBody)
			if strings.Contains(p.Detail, "json:") {
				t.Fatalf("detail %q leaks a Go error", p.Detail)
			}
		})
	}
	if got, _ := s.history(t, "r", ""); len(got) != 0 {
		t.Fatalf("bad posts stored %s", got)
	}
}

func TestPostGoodBodyEdges(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{MaxMessageBytes: 32})
	tests := []struct {
		name string
		body string
		text string
		user string
	}{
		{name: "text of exactly the maximum", body: `{"text":"` + strings.Repeat("x", 32) + `"}`, text: strings.Repeat("x", 32)},
		{name: "multi-byte text of exactly the maximum", body: `{"text":"` + strings.Repeat(`\u00e9`, 16) + `"}`, text: strings.Repeat("é", 16)},
		{name: "user of 64 characters", body: `{"text":"a","user":"` + strings.Repeat("ü", 64) + `"}`, text: "a", user: strings.Repeat("ü", 64)},
		{name: "user with space", body: `{"text":"a","user":"Ann Lee"}`, text: "a", user: "Ann Lee"},
		{name: "fields in other order", body: `{"user":"bo","text":"a"}`, text: "a", user: "bo"},
		{name: "surrounding whitespace", body: " \n{\"text\":\"a\"}\r\n ", text: "a"},
		{name: "text with white space around", body: `{"text":" a\n"}`, text: " a\n"},
		{name: "text of a zero-width space", body: `{"text":"\u200b"}`, text: "\u200b"}, // a format character, not White_Space
		{name: "text of control characters", body: `{"text":"\u0000\u001b"}`, text: "\x00\x1b"},
		{name: "escaped surrogate pair", body: `{"text":"\ud83d\ude00","user":"\uD83D\uDE00"}`, text: "😀", user: "😀"},
		{name: "escaped backslash before u", body: `{"text":"\\ud800"}`, text: `\ud800`},
		{name: "U+FFFD as sent", body: `{"text":"\ufffd�"}`, text: "\ufffd\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.postJSON(t, "r", tt.body)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status = %d, want 201; body %s", resp.StatusCode, body)
			}
			var m message
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			user := tt.user
			if user == "" {
				user = "anonymous"
			}
			if m.Text != tt.text || m.User != user {
				t.Fatalf("stored text %q by %q, want %q by %q", m.Text, m.User, tt.text, user)
			}
		})
	}
}

func TestPostContentType(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
		"application/jsonx", "application/problem+json", "application/json; charset", "json"} {
		resp, body := s.do(t, http.MethodPost, "/rooms/r/messages", `{"text":"a"}`, "Content-Type", ct)
		wantProblem(t, resp, body, http.StatusUnsupportedMediaType, typeUnsupportedMedia)
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON"} {
		resp, body := s.do(t, http.MethodPost, "/rooms/r/messages", `{"text":"a"}`, "Content-Type", ct)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("Content-Type %q: status %d, want 201; body %s", ct, resp.StatusCode, body)
		}
	}
}

// unsizedReader hides its length, so that the client sends it chunked.
type unsizedReader struct{ r io.Reader }

func (u unsizedReader) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestPostBodyTooLarge(t *testing.T) {
	t.Parallel()
	const maxText = 100
	s := startServer(t, serverConfig{MaxMessageBytes: maxText})
	// The body limit leaves room for a text of maxText bytes that JSON
	// escapes completely (\u00XX for every byte).
	fits := `{"text":"` + strings.Repeat(`\u0001`, maxText) + `","user":"` + strings.Repeat(`\u00fc`, 64) + `"}`
	if resp, body := s.postJSON(t, "r", fits); resp.StatusCode != http.StatusCreated {
		t.Fatalf("fully escaped maximal message: %d %s", resp.StatusCode, body)
	}
	huge := `{"text":"` + strings.Repeat("x", 64<<10) + `"}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var body io.Reader = strings.NewReader(huge)
			if chunked {
				body = unsizedReader{body}
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/rooms/r/messages", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := checkedClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if chunked != (resp.Request.ContentLength <= 0) {
				t.Fatalf("request ContentLength = %d, chunked %v", resp.Request.ContentLength, chunked)
			}
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			wantProblem(t, resp, data, http.StatusRequestEntityTooLarge, typeBodyTooLarge)
		})
	}
	if got, _ := s.history(t, "r", ""); len(got) != 1 {
		t.Fatalf("history holds %d messages, want only the one that fit", len(got))
	}
}

func TestIdempotentPost(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	first, body1 := s.postJSON(t, "r", `{"text":"hi","user":"ann"}`, "Idempotency-Key", "key-1")
	again, body2 := s.postJSON(t, "r", `{"user":"ann", "text":"hi"}`, "Idempotency-Key", "key-1")
	if first.StatusCode != http.StatusCreated || again.StatusCode != http.StatusCreated {
		t.Fatalf("statuses %d, %d; want 201 twice", first.StatusCode, again.StatusCode)
	}
	if got := first.Header.Get("Idempotent-Replayed"); got != "" {
		t.Fatalf("first post: Idempotent-Replayed = %q, want none", got)
	}
	if got := again.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Fatalf("repeated post: Idempotent-Replayed = %q, want true", got)
	}
	if !bytes.Equal(body1, body2) {
		t.Fatalf("repeated post returned %s, first %s", body2, body1)
	}

	resp, data := s.postJSON(t, "r", `{"text":"hi!","user":"ann"}`, "Idempotency-Key", "key-1")
	wantProblem(t, resp, data, http.StatusUnprocessableEntity, typeIdempotencyConflict)
	// Keys belong to a room and a user: the same key elsewhere is another key.
	for _, other := range []struct{ room, body string }{
		{"other", `{"text":"hi","user":"ann"}`},
		{"r", `{"text":"hi","user":"bob"}`},
		{"r", `{"text":"hi"}`},
	} {
		if resp, data := s.postJSON(t, other.room, other.body, "Idempotency-Key", "key-1"); resp.StatusCode != http.StatusCreated ||
			resp.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("same key, room %s, body %s: %d %v %s, want a new message", other.room, other.body, resp.StatusCode, resp.Header, data)
		}
	}
	if got, _ := s.history(t, "r", ""); len(got) != 3 {
		t.Fatalf("history holds %d messages, want ann's, bob's and anonymous'", len(got))
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	for _, key := range []string{"", "has space", "tab\tkey", strings.Repeat("k", 129), "é"} {
		resp, body := s.postJSON(t, "r", `{"text":"a"}`, "Idempotency-Key", key)
		wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidParameter)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/rooms/r/messages", strings.NewReader(`{"text":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("Idempotency-Key", "one")
	req.Header.Add("Idempotency-Key", "two")
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	wantProblem(t, resp, body, http.StatusBadRequest, typeInvalidParameter)
	if resp, body := s.postJSON(t, "r", `{"text":"a"}`, "Idempotency-Key", strings.Repeat("k", 128)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("128-character key: %d %s", resp.StatusCode, body)
	}
	if got, _ := s.history(t, "r", ""); len(got) != 1 {
		t.Fatalf("history holds %d messages, want 1", len(got))
	}
}

func TestIdempotentPostConcurrent(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	const n = 50
	type result struct {
		status   int
		replayed string
		body     []byte
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			resp, body := s.postJSON(t, "r", `{"text":"once"}`, "Idempotency-Key", "same-key")
			results[i] = result{resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), body}
		})
	}
	wg.Wait()
	fresh := 0
	for i, r := range results {
		if r.status != http.StatusCreated || !bytes.Equal(r.body, results[0].body) {
			t.Fatalf("post %d: %d %s; post 0 got %s", i, r.status, r.body, results[0].body)
		}
		if r.replayed == "" {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d posts were not replays, want exactly 1", fresh)
	}
	stored, _ := s.history(t, "r", "")
	if len(stored) != 1 || !bytes.Equal(stored[0], bytes.TrimSuffix(results[0].body, []byte("\n"))) {
		t.Fatalf("history = %s, want only %s", stored, results[0].body)
	}
	if m := s.post(t, "r", "next"); m.Seq != 2 {
		t.Fatalf("next message has seq %d, want 2", m.Seq)
	}
}
