package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

const testCursorKey = "cursor-key-of-more-than-32-bytes!!"

// TestRunWithCursorKey proves that CURSOR_KEY reaches the multi-room
// streams: their cursors are signed with it, and a cursor signed with
// another key, or only checksummed, is refused with 400 invalid-cursor.
func TestRunWithCursorKey(t *testing.T) {
	redis := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+redis.URL(), "KEY_PREFIX=cursorkey:", "CURSOR_KEY="+testCursorKey)
	stream := in.openLines(t, "/stream?rooms=lobby")
	if line, _ := stream.next(t); !strings.HasPrefix(line, "retry: ") {
		t.Fatalf("stream began with %q, want a retry line", line)
	}
	posted := in.postMessage(t, "lobby", "hi")
	line, _ := stream.next(t)
	token, ok := strings.CutPrefix(line, "id: ")
	if !ok {
		t.Fatalf("first line of the message %q, want its id", line)
	}
	var m struct{ ID string }
	if err := json.Unmarshal(posted, &m); err != nil {
		t.Fatal(err)
	}
	id, err := chat.ParseID(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if pos, err := cursor.NewCodec([]byte(testCursorKey)).Decode(token, []string{"lobby"}); err != nil || pos[0].ID != id {
		t.Fatalf("the stream's cursor decodes with CURSOR_KEY to %v, %v; want the position %v", pos, err, id)
	}
	if _, err := cursor.NewCodec(nil).Decode(token, []string{"lobby"}); err == nil {
		t.Fatalf("the stream's cursor decodes without a key: it is not signed")
	}

	encode := func(key string) string {
		t.Helper()
		enc, err := cursor.NewCodec([]byte(key)).NewEncoder([]string{"lobby"}, []chat.ID{{}})
		if err != nil {
			t.Fatal(err)
		}
		return enc.Token()
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{name: "the stream's own cursor", token: token, want: http.StatusOK},
		{name: "signed with the same key", token: encode(testCursorKey), want: http.StatusOK},
		{name: "signed with another key", token: encode("another-key-of-more-than-32-bytes!"), want: http.StatusBadRequest},
		{name: "unsigned", token: encode(""), want: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A refused cursor is answered at once; an accepted one opens a
			// stream, which the check of its headers is enough for.
			for _, req := range []struct {
				path   string
				header []string
			}{
				{path: "/stream?rooms=lobby", header: []string{"Last-Event-ID", tc.token}},
				{path: "/stream?rooms=lobby&last_event_id=" + tc.token},
			} {
				resp, body := in.getAnswer(t, req.path, req.header...)
				if resp.StatusCode != tc.want {
					t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.want, body)
				}
				if tc.want == http.StatusBadRequest && !strings.Contains(string(body), "urn:roomcast:problem:invalid-cursor") {
					t.Fatalf("body %s, want the problem invalid-cursor", body)
				}
			}
		})
	}
}

// getAnswer sends a GET and returns its status with the body of an
// error answer; a stream is closed once its headers are in.
func (in *instance) getAnswer(t *testing.T, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, in.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := in.httpClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}
