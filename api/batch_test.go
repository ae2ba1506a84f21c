package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"roomcast/api"
	"roomcast/api/auth"
)

// batchResult is one result of POST /messages.
type batchResult struct {
	Status   int          `json:"status"`
	Replayed bool         `json:"replayed"`
	Message  *message     `json:"message"`
	Problem  *api.Problem `json:"problem"`
}

func (s *testServer) postBatch(t testing.TB, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return s.do(t, http.MethodPost, "/messages", body, append([]string{"Content-Type", "application/json"}, header...)...)
}

// batchResults posts a batch with the test's API key and decodes its 207.
func (s *testServer) batchResults(t testing.TB, body string) []batchResult {
	t.Helper()
	resp, data := s.postBatch(t, body, apiKey(testKey)...)
	expectStatus(t, resp, data, http.StatusMultiStatus, "")
	var out struct{ Results []batchResult }
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("207 body %s: %v", data, err)
	}
	return out.Results
}

func keyServer(t testing.TB) *testServer {
	return authServer(t, api.Security{APIKeys: testAPIKeys(t),
		Tokens: verifier(t, auth.Config{Secret: testSecret, DefaultRooms: auth.Rooms{}})})
}

func TestBatchBroadcastsToRooms(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	watch := s.openStream(t, "/rooms/b-two/stream", apiKey(testKey)...)
	watch.awaitOpen()

	got := s.batchResults(t, `{"rooms":["b-one","b-two"],"text":"maintenance at five","user":"ops"}`)
	if len(got) != 2 {
		t.Fatalf("results %+v, want 2", got)
	}
	for i, room := range []string{"b-one", "b-two"} {
		r := got[i]
		if r.Status != http.StatusCreated || r.Message == nil || r.Message.Room != room ||
			r.Message.User != "ops" || r.Message.Text != "maintenance at five" {
			t.Fatalf("result %d = %+v, want a 201 in %s", i, r, room)
		}
		if n := s.historyLen(t, room); n != 1 {
			t.Fatalf("%s holds %d messages, want 1", room, n)
		}
	}
	if m := watch.nextMessage(); m.ID != got[1].Message.ID {
		t.Fatalf("the stream of b-two received %+v, want %s", m, got[1].Message.ID)
	}
}

func TestBatchMessagesOneByOne(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	body := `{"messages":[
		{"room":"m-a","text":"first","idempotency_key":"k1"},
		{"room":"m-a","text":"second","user":"bot"},
		{"room":"m-a","text":"first","idempotency_key":"k1"},
		{"room":"m-a","text":"other","idempotency_key":"k1"},
		{"room":"m-b","text":"third"}
	]}`
	got := s.batchResults(t, body)
	want := []int{201, 201, 201, 422, 201}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(got), len(want), got)
	}
	for i, status := range want {
		if got[i].Status != status || (status == 201) != (got[i].Message != nil) || (status != 201) != (got[i].Problem != nil) {
			t.Fatalf("result %d = %+v, want status %d", i, got[i], status)
		}
	}
	first, second, replay := got[0].Message, got[1].Message, got[2]
	if first.User != "system" || second.User != "bot" || second.Seq <= first.Seq {
		t.Fatalf("first %+v, second %+v: want system then bot, in order", first, second)
	}
	if !replay.Replayed || replay.Message.ID != first.ID || got[0].Replayed {
		t.Fatalf("the retry under k1 = %+v, want a replay of %s", replay, first.ID)
	}
	if p := got[3].Problem; p.Type != "urn:roomcast:problem:idempotency-conflict" || p.Status != 422 {
		t.Fatalf("k1 with other text: %+v", p)
	}
	if n := s.historyLen(t, "m-a"); n != 2 {
		t.Fatalf("m-a holds %d messages, want 2", n)
	}
	if n := s.historyLen(t, "m-b"); n != 1 {
		t.Fatalf("m-b holds %d messages, want 1", n)
	}
}

// TestBatchRefusedWhole: a batch with any malformed part stores nothing,
// not even its good messages.
func TestBatchRefusedWhole(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	many := make([]string, 1001)
	for i := range many {
		many[i] = `{"room":"w","text":"x"}`
	}
	good := `{"room":"w","text":"fine"},`
	for _, tc := range []struct{ body, detail string }{
		{`{}`, `needs "rooms"`},
		{`[]`, "JSON object"},
		{`{"rooms":["w"],"messages":[{"room":"w","text":"x"}],"text":"x"}`, "comes alone"},
		{`{"messages":[]}`, "1 to 1000"},
		{`{"messages":{}}`, "1 to 1000"},
		{`{"messages":[` + strings.Join(many, ",") + `]}`, "1 to 1000"},
		{`{"messages":[` + good + `{"room":"w","text":"   "}]}`, "messages[1]: \"text\" must hold more than white space"},
		{`{"messages":[` + good + `{"text":"no room"}]}`, "messages[1]: \"room\" is required"},
		{`{"messages":[` + good + `{"room":"bad room","text":"x"}]}`, "messages[1]: \"room\" is not a room id"},
		{`{"messages":[` + good + `{"room":"w","text":"x","colour":"red"}]}`, "messages[1]: unknown field"},
		{`{"messages":[` + good + `"not an object"]}`, "messages[1]: not a JSON object"},
		{`{"messages":[` + good + `{"room":"w","text":"x","idempotency_key":"has space"}]}`, "messages[1]: \"idempotency_key\""},
		{`{"rooms":[],"text":"x"}`, "1 to 100"},
		{`{"rooms":["w","bad room"],"text":"x"}`, "rooms[1] is not a room id"},
		{`{"rooms":["w","w"],"text":"x"}`, "rooms[1] names w again"},
		{`{"rooms":["w"],"text":" "}`, "white space"},
		{`{"rooms":["w"]}`, "required"},
		{`{"rooms":["w"],"text":"x","idempotency_key":"k"}`, "unknown field"},
		{`{"rooms":["w"],"text":"x","reply_to":"a-1"}`, "reply_to"},
		{`{"rooms":["w"],"text":"x","metadata":[1]}`, "metadata"},
		{`{"messages":[` + good + `{"room":"w","text":"x","metadata":"m"}]}`, "messages[1]: \"metadata\" must be a JSON object"},
		{`{"rooms":"w","text":"x"}`, "1 to 100"},
		{`{"rooms":["w"],"text":"x"} {}`, "exactly one"},
		{"{\"rooms\":[\"w\"],\"text\":\"\xff\"}", "UTF-8"},
	} {
		resp, data := s.postBatch(t, tc.body, apiKey(testKey)...)
		p := problemOf(t, resp, data)
		if resp.StatusCode != http.StatusBadRequest || p.Type != "urn:roomcast:problem:invalid-body" || !strings.Contains(p.Detail, tc.detail) {
			t.Fatalf("%.80s: %d %s, want 400 invalid-body with %q", tc.body, resp.StatusCode, data, tc.detail)
		}
	}
	if n := s.historyLen(t, "w"); n != 0 {
		t.Fatalf("w holds %d messages after refused batches, want 0", n)
	}

	one := `{"rooms":["w"],"text":"x"}`
	resp, data := s.postBatch(t, one)
	expectStatus(t, resp, data, http.StatusUnauthorized, "urn:roomcast:problem:unauthorized")
	resp, data = s.postBatch(t, one, bearer(hs256(t, "ann", nil))...)
	expectStatus(t, resp, data, http.StatusUnauthorized, "urn:roomcast:problem:unauthorized")
	resp, data = s.postBatch(t, one, apiKey("not-a-key-of-this-server-but-long-enough")...)
	expectStatus(t, resp, data, http.StatusUnauthorized, "urn:roomcast:problem:unauthorized")
	resp, data = s.do(t, http.MethodPost, "/messages", one, append([]string{"Content-Type", "text/plain"}, apiKey(testKey)...)...)
	expectStatus(t, resp, data, http.StatusUnsupportedMediaType, "urn:roomcast:problem:unsupported-media-type")
	if n := s.historyLen(t, "w"); n != 0 {
		t.Fatalf("w holds %d messages after refused requests, want 0", n)
	}
}

// TestBatchOfAThousand posts the largest batch, across rooms, and finds
// every message stored in its room in the order given.
func TestBatchOfAThousand(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	items := make([]string, 1000)
	for i := range items {
		items[i] = fmt.Sprintf(`{"room":"k-%d","text":"n%d"}`, i%10, i)
	}
	got := s.batchResults(t, `{"messages":[`+strings.Join(items, ",")+`]}`)
	last := map[string]int64{}
	for i, r := range got {
		if r.Status != http.StatusCreated || r.Message.Text != fmt.Sprintf("n%d", i) {
			t.Fatalf("result %d = %+v", i, r)
		}
		if r.Message.Seq <= last[r.Message.Room] {
			t.Fatalf("result %d: seq %d after %d in %s", i, r.Message.Seq, last[r.Message.Room], r.Message.Room)
		}
		last[r.Message.Room] = r.Message.Seq
	}
	for i := range 10 {
		if n := s.historyLen(t, fmt.Sprintf("k-%d", i)); n != 100 {
			t.Fatalf("k-%d holds %d messages, want 100", i, n)
		}
	}
}

// TestBatchWithoutRedis: each message tells that the store could not be
// reached, so that the backend retries them under their keys.
func TestBatchWithoutRedis(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	s.Redis.Kill()
	got := s.batchResults(t, `{"messages":[{"room":"d","text":"a","idempotency_key":"a"},{"room":"e","text":"b"}]}`)
	for i, r := range got {
		if r.Status != http.StatusServiceUnavailable || r.Problem == nil || r.Problem.Type != "urn:roomcast:problem:unavailable" {
			t.Fatalf("result %d = %+v, want 503 unavailable", i, r)
		}
	}
}

// TestBatchMetadataAndReplies: metadata rides on both shapes; a reply to a
// message the room does not hold refuses that message alone.
func TestBatchMetadataAndReplies(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	got := s.batchResults(t, `{"rooms":["r-a","r-b"],"text":"x","metadata":{"k": [1, 2]}}`)
	for i, r := range got {
		var m struct{ Metadata json.RawMessage }
		data, _ := json.Marshal(r.Message)
		if r.Status != http.StatusCreated {
			t.Fatalf("result %d = %+v", i, r)
		}
		_ = json.Unmarshal(data, &m)
	}
	first := got[0].Message
	resp, body := s.do(t, http.MethodGet, "/rooms/r-a/messages/"+first.ID, "", apiKey(testKey)...)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"metadata":{"k":[1,2]}`) {
		t.Fatalf("GET the broadcast message: %d %s, want its metadata", resp.StatusCode, body)
	}
	got = s.batchResults(t, `{"messages":[
		{"room":"r-a","text":"reply","reply_to":"`+first.ID+`"},
		{"room":"r-b","text":"reply elsewhere","reply_to":"`+first.ID+`"}
	]}`)
	if got[0].Status != http.StatusCreated || got[1].Status != http.StatusBadRequest ||
		got[1].Problem.Type != "urn:roomcast:problem:invalid-body" {
		t.Fatalf("replies = %+v, want 201 then a 400 for the reply to another room's message", got)
	}
	if n := s.historyLen(t, "r-b"); n != 1 {
		t.Fatalf("r-b holds %d messages, want 1: the refused reply stores nothing", n)
	}
}

// TestBatchIndexesThePostersRooms: as a single post does, a batch puts
// each room its user posted to first in the user's GET /me/rooms.
func TestBatchIndexesThePostersRooms(t *testing.T) {
	t.Parallel()
	s := keyServer(t)
	s.batchResults(t, `{"messages":[{"room":"ix-a","text":"x","user":"bot"},{"room":"ix-b","text":"y","user":"bot"}]}`)
	resp, body := s.do(t, http.MethodGet, "/me/rooms?user=bot", "", apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	var mine struct{ Rooms []struct{ Room string } }
	if err := json.Unmarshal(body, &mine); err != nil || len(mine.Rooms) != 2 || mine.Rooms[0].Room != "ix-a" || mine.Rooms[1].Room != "ix-b" {
		t.Fatalf("GET /me/rooms = %s, want ix-a and ix-b", body)
	}
}
