package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/api/sse"
	"roomcast/broker/chat"
)

// The fuzz targets below run on their seeds with every go test; .ci/test
// also fuzzes each for a few seconds. Seeds beyond those added here are
// in testdata/fuzz.

const fuzzMaxText = 4096

// fuzzLimits are the limits decodePost is fuzzed with.
var fuzzLimits = postLimits{maxText: fuzzMaxText, maxMetadata: 2048}

func FuzzDecodePost(f *testing.F) {
	for _, seed := range []string{
		`{"text":"hi"}`, `{"text":"hi","user":"bob"}`, `{"text":""}`, `{"TEXT":"hi"}`, `{"text":"a","admin":true}`,
		`{"text":"a"}{"text":"b"}`, `[{"text":"a"}]`, `{"text":null}`, `{"text":1}`, `{"text":"\u0000\r\n\ndata: x"}`,
		`{"text":"\ud800"}`, `{"text":" \u3000\n"}`, "{\"text\":\"\xff\"}", `{"text":"a","text":"b"}`, `{"user":"a\nb","text":"x"}`, ` {"text":"x"} `,
		`{"text":"x"`, `"text"`, ``, `null`, `{"text":"` + strings.Repeat("😀", 1025) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		post, err := decodePost(body, fuzzLimits)
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) || p.Status != http.StatusBadRequest || p.Type != typeInvalidBody {
				t.Fatalf("decodePost(%q) error %v, want an invalid-body problem", body, err)
			}
			if len(p.Detail) > 200 {
				t.Fatalf("detail of %d bytes echoes too much: %q", len(p.Detail), p.Detail)
			}
			return
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("decodePost accepted %q, which is not valid UTF-8 JSON", body)
		}
		if strings.TrimSpace(post.Text) == "" || len(post.Text) > fuzzMaxText {
			t.Fatalf("decodePost(%q) accepted text of %d bytes", body, len(post.Text))
		}
		if post.User != "" && !validUser(post.User) {
			t.Fatalf("decodePost(%q) accepted user %q", body, post.User)
		}
		if strings.ContainsRune(post.Text+post.User, utf8.RuneError) && !bytes.ContainsRune(body, utf8.RuneError) &&
			!bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			t.Fatalf("decodePost(%q) made up a U+FFFD: text %q, user %q", body, post.Text, post.User)
		}
		again, _ := json.Marshal(map[string]string{"text": post.Text, "user": post.User})
		if post.User == "" {
			again, _ = json.Marshal(map[string]string{"text": post.Text})
		}
		if round, err := decodePost(again, fuzzLimits); err != nil || round != post {
			t.Fatalf("re-encoded %q decodes to %+v, %v; want %+v", again, round, err, post)
		}
	})
}

func FuzzHistoryQuery(f *testing.F) {
	for _, seed := range []string{
		"", "limit=10", "before=mb1x2y3z-7", "after=mb1x2y3z-7&limit=200", "before=a-1&after=a-2", "limit=0", "limit=201",
		"limit=-1", "limit=1e3", "limit=0x10", "limit=+5", "before=a-01", "before=0a-1", "before=a-9007199254740992",
		"after=zzzzzzzzzzzzz-1", "after=A-1", "after=a-1%00", "after=%0d%0aid:%201", "before=a-1&before=a-2", "after=a--1",
		"limit=%", "after=a-1;b-2", "before=%E2%80%A8-1",
	} {
		f.Add(seed)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/rooms/r/messages", nil)
		req.URL.RawQuery = rawQuery
		c := e.NewContext(req, httptest.NewRecorder())
		q, err := historyQuery(c)
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) || p.Status != http.StatusBadRequest {
				t.Fatalf("historyQuery(%q) error %v, want a 400 problem", rawQuery, err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > maxLimit {
			t.Fatalf("historyQuery(%q) limit %d", rawQuery, q.Limit)
		}
		values, _ := url.ParseQuery(rawQuery)
		var cursor string
		switch q.Direction {
		case chat.Before:
			cursor = values.Get("before")
		case chat.After:
			cursor = values.Get("after")
		case chat.Latest:
			if values.Get("before") != "" || values.Get("after") != "" {
				t.Fatalf("historyQuery(%q) ignored a cursor", rawQuery)
			}
			return
		}
		if q.Cursor.String() != cursor {
			t.Fatalf("historyQuery(%q) cursor %q, want %q as given", rawQuery, q.Cursor, cursor)
		}
	})
}

func FuzzResumePoint(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""}, {"mb1x2y3z-7", ""}, {"", "mb1x2y3z-7"}, {"a-1", "b-2"}, {"a-0", ""}, {"a-1\x00", ""},
		{"", "a-1\r\nevent: x"}, {"a-1 ", ""}, {"A-1", ""}, {"", "a-18446744073709551616"}, {"-1", ""}, {"a-", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		// An empty query is left out: given empty, it is a 400 of its own
		// (TestEmptyValues).
		r := &http.Request{Header: http.Header{"Last-Event-Id": {header}}, URL: &url.URL{Path: "/rooms/r/stream"}}
		if query != "" {
			r.URL.RawQuery = url.Values{"last_event_id": {query}}.Encode()
		}
		text := header
		if text == "" {
			text = query
		}
		id, err := resumePoint(echo.New().NewContext(r, nil))
		switch {
		case text == "":
			if id != nil || err != nil {
				t.Fatalf("no Last-Event-ID: got %v, %v; want nil, nil", id, err)
			}
		case err != nil:
			if !errors.Is(err, errInvalidCursor) {
				t.Fatalf("resumePoint(%q) error %v, want errInvalidCursor", text, err)
			}
		case id.String() != text:
			t.Fatalf("resumePoint(%q) = %q; ids must round-trip exactly", text, id)
		}
	})
}

// sseEvent is an event as a browser's EventSource dispatches it.
type sseEvent struct {
	id, typ, data string
}

// parseSSE interprets an event stream as the HTML Living Standard's
// "interpret an event stream" algorithm does, line by line, and returns
// the dispatched events. A last line without its line break is dropped.
func parseSSE(stream []byte) []sseEvent {
	var events []sseEvent
	var lastID, typ string
	var data strings.Builder
	for len(stream) > 0 {
		i := bytes.IndexAny(stream, "\r\n")
		if i < 0 {
			break
		}
		line := string(stream[:i])
		if stream[i] == '\r' && i+1 < len(stream) && stream[i+1] == '\n' {
			i++
		}
		stream = stream[i+1:]
		if line == "" {
			if data.Len() > 0 {
				d := strings.TrimSuffix(data.String(), "\n")
				t := typ
				if t == "" {
					t = "message"
				}
				events = append(events, sseEvent{id: lastID, typ: t, data: d})
			}
			data.Reset()
			typ = ""
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
		case "id":
			if !strings.Contains(value, "\x00") {
				lastID = value
			}
		}
	}
	return events
}

// normalizeBreaks is data as EventSource delivers it: every line break is
// a line feed.
func normalizeBreaks(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func FuzzSSEFraming(f *testing.F) {
	for _, seed := range []struct {
		id, event string
		data      []byte
	}{
		{"mb1x2y3z-1", "message", []byte(`{"text":"hi"}`)},
		{"", "", nil},
		{"a\nb", "x\r\ny", []byte("line1\nline2\r\nline3\rline4")},
		{"1\x00", "reset", []byte("\n\ndata: injected\n\nevent: admin\nid: 666\n\n")},
		{"", "", []byte("\r\n\r\n")},
		{"x", "", []byte(":comment\nretry: 1\n")},
		{"", " spaced", []byte(" leading space")},
		{"", "", []byte("\xff\xfe invalid \xc3")},
		{"", "", []byte(strings.Repeat("😀", 1024))},
		{"", "", []byte("nul\x00byte")},
		{"", "", []byte("\u2028\u2029\u0085")},
	} {
		f.Add(seed.id, seed.event, seed.data)
	}
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		frame := sse.AppendEvent(nil, id, event, data)
		wantID := strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(id)
		wantType := strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(event)
		if wantType == "" {
			wantType = "message"
		}
		want := sseEvent{id: wantID, typ: wantType, data: normalizeBreaks(string(data))}

		// One frame, after a comment and a retry line as streams begin.
		stream := sse.AppendEvent(sse.AppendComment(sse.AppendRetry(nil, 2000), event+string(data)), id, event, data)
		if got := parseSSE(stream); len(got) != 1 || got[0] != want {
			t.Fatalf("AppendEvent(%q, %q, %q) = %q parses to %+v, want one %+v", id, event, data, frame, got, want)
		}
		// Each frame ends itself: two in a row are two events.
		if got := parseSSE(append(append([]byte(nil), frame...), frame...)); len(got) != 2 || got[1] != want {
			t.Fatalf("two frames %q parse to %+v, want two of %+v", frame, got, want)
		}

		// A live message: its text becomes JSON, which sse.Frames frames.
		if !utf8.Valid(data) {
			return
		}
		text := string(data)
		msg, _ := json.Marshal(map[string]string{"id": "mb1x2y3z-1", "text": text})
		idLine, body := sse.Frames{}.Message(chat.ID{Epoch: "mb1x2y3z", Seq: 1}, msg)
		got := parseSSE(append(append([]byte(nil), idLine...), body...))
		if len(got) != 1 || got[0].id != "mb1x2y3z-1" || got[0].typ != "message" {
			t.Fatalf("the frame of text %q parses to %+v", text, got)
		}
		var back struct{ Text string }
		if err := json.Unmarshal([]byte(got[0].data), &back); err != nil || back.Text != text {
			t.Fatalf("message text %q arrives as %q (%v)", text, back.Text, err)
		}
	})
}
