package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// historyPage is a decoded history response.
type historyPage struct {
	Messages []message `json:"messages"`
	HasMore  bool      `json:"has_more"`
	Position string    `json:"position"`
	Reset    *struct {
		Reason         string `json:"reason"`
		Detail         string `json:"detail"`
		LastEventID    string `json:"last_event_id"`
		FirstAvailable string `json:"first_available_id"`
	} `json:"reset"`
}

func (s *testServer) historyPage(t testing.TB, room, query string) historyPage {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/rooms/"+room+"/messages"+query, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET history %s%s: %d %q %s", room, query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var p historyPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("history body %s: %v", body, err)
	}
	if p.Messages == nil {
		t.Fatalf("history body %s has no messages array", body)
	}
	return p
}

// postMany posts n messages m1…mn to room and returns them.
func (s *testServer) postMany(t testing.TB, room string, n int) []message {
	t.Helper()
	posted := make([]message, n)
	for i := range posted {
		posted[i] = s.post(t, room, fmt.Sprintf("m%d", i+1))
	}
	return posted
}

// wantMessages fails unless got are exactly want, in order.
func wantMessages(t testing.TB, got, want []message) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("messages (seqs %v) = %+v, want seqs %v", seqs(got), got, seqs(want))
	}
}

func seqs(ms []message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func TestHistoryPagesBackwardsAndForwards(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	posted := s.postMany(t, "r", 25)
	for i, m := range posted {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
	}

	// Backwards from the newest, as a client scrolling up does.
	page := s.historyPage(t, "r", "?limit=10")
	wantMessages(t, page.Messages, posted[15:25])
	if !page.HasMore {
		t.Fatalf("newest page: has_more = false, want true")
	}
	wantPages := [][]message{posted[5:15], posted[0:5]}
	for i, want := range wantPages {
		page = s.historyPage(t, "r", "?limit=10&before="+url.QueryEscape(page.Messages[0].ID))
		wantMessages(t, page.Messages, want)
		if page.HasMore != (i == 0) {
			t.Fatalf("backward page %d: has_more = %v", i, page.HasMore)
		}
	}
	page = s.historyPage(t, "r", "?limit=10&before="+posted[0].ID)
	if len(page.Messages) != 0 || page.HasMore {
		t.Fatalf("before the first message: %+v, want nothing", page)
	}

	// Forwards from the oldest, as a client catching up does.
	cursor := posted[0].ID
	var got []message
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("forward paging does not end")
		}
		page = s.historyPage(t, "r", "?limit=10&after="+cursor)
		if page.Reset != nil {
			t.Fatalf("forward page after %s has reset %+v", cursor, page.Reset)
		}
		got = append(got, page.Messages...)
		if !page.HasMore {
			break
		}
		cursor = page.Messages[len(page.Messages)-1].ID
	}
	wantMessages(t, got, posted[1:])

	// has_more is exact when the rest fills the page to the last message.
	page = s.historyPage(t, "r", "?limit=10&after="+posted[14].ID)
	wantMessages(t, page.Messages, posted[15:])
	if page.HasMore {
		t.Fatalf("after %s with exactly 10 left: has_more = true", posted[14].ID)
	}
	page = s.historyPage(t, "r", "?after="+posted[24].ID)
	if len(page.Messages) != 0 || page.HasMore || page.Reset != nil {
		t.Fatalf("after the newest message: %+v, want nothing", page)
	}
	page = s.historyPage(t, "r", "")
	wantMessages(t, page.Messages, posted)
	if page.HasMore {
		t.Fatalf("default limit 50 over 25 messages: has_more = true")
	}
	page = s.historyPage(t, "r", "?limit=1")
	wantMessages(t, page.Messages, posted[24:])
}

func TestHistoryDefaultAndMaximumLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	posted := s.postMany(t, "r", 205)
	page := s.historyPage(t, "r", "")
	wantMessages(t, page.Messages, posted[155:])
	if !page.HasMore {
		t.Fatalf("default page: has_more = false")
	}
	page = s.historyPage(t, "r", "?limit=200")
	wantMessages(t, page.Messages, posted[5:])
	if !page.HasMore {
		t.Fatalf("limit 200: has_more = false")
	}
}

func TestHistoryOfUnknownRoomIsEmpty(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	s.post(t, "known", "x")
	resp, body := s.do(t, http.MethodGet, "/rooms/unknown/messages", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	if got, want := string(body), "{\"messages\":[],\"has_more\":false}\n"; got != want {
		t.Fatalf("body = %s, want %s", got, want)
	}
	for _, q := range []string{"?before=abc-5", "?limit=3"} {
		if page := s.historyPage(t, "unknown", q); len(page.Messages) != 0 || page.HasMore || page.Reset != nil {
			t.Fatalf("unknown room%s = %+v, want empty", q, page)
		}
	}
}

func TestHistoryTrimmedToHistoryMax(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{HistoryMax: 5})
	posted := s.postMany(t, "r", 12)
	page := s.historyPage(t, "r", "?limit=50")
	wantMessages(t, page.Messages, posted[7:])
	if page.HasMore {
		t.Fatalf("has_more = true with all retained messages on the page")
	}

	page = s.historyPage(t, "r", "?limit=3&after="+posted[1].ID)
	wantMessages(t, page.Messages, posted[7:10])
	if !page.HasMore {
		t.Fatalf("has_more = false after a trimmed cursor with 5 retained")
	}
	r := page.Reset
	if r == nil || r.Reason != "trimmed" || r.LastEventID != posted[1].ID || r.FirstAvailable != posted[7].ID || r.Detail == "" {
		t.Fatalf("reset = %+v, want trimmed from %s, first available %s", r, posted[1].ID, posted[7].ID)
	}
	// The message just before the oldest retained one loses nothing.
	page = s.historyPage(t, "r", "?after="+posted[6].ID)
	wantMessages(t, page.Messages, posted[7:])
	if page.Reset != nil {
		t.Fatalf("reset %+v after the last trimmed message, want none", page.Reset)
	}
	page = s.historyPage(t, "r", "?before="+posted[7].ID)
	if len(page.Messages) != 0 || page.HasMore {
		t.Fatalf("before the oldest retained message: %+v, want nothing", page)
	}
	page = s.historyPage(t, "r", "?limit=2&before="+posted[3].ID)
	if len(page.Messages) != 0 || page.HasMore {
		t.Fatalf("before a trimmed message: %+v, want nothing", page)
	}
}

func TestHistoryAfterEpochChange(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	old := s.postMany(t, "r", 3)
	if err := s.Redis.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	renewed := s.postMany(t, "r", 2)
	if renewed[0].Seq != 1 || renewed[0].ID == old[0].ID {
		t.Fatalf("first message after FLUSHALL = %+v, want seq 1 with a new id", renewed[0])
	}
	page := s.historyPage(t, "r", "?after="+old[2].ID)
	wantMessages(t, page.Messages, renewed)
	r := page.Reset
	if r == nil || r.Reason != "epoch_changed" || r.LastEventID != old[2].ID || r.FirstAvailable != renewed[0].ID {
		t.Fatalf("reset = %+v, want epoch_changed from %s, first available %s", r, old[2].ID, renewed[0].ID)
	}
	page = s.historyPage(t, "r", "?before="+old[2].ID)
	if len(page.Messages) != 0 || page.HasMore {
		t.Fatalf("before an id of the lost epoch: %+v, want nothing", page)
	}
	page = s.historyPage(t, "r", "")
	wantMessages(t, page.Messages, renewed)
}

func TestHistoryRejectsBadQueries(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	m := s.post(t, "r", "x")
	tests := []struct {
		query string
		typ   string
	}{
		{query: "?limit=0", typ: typeInvalidParameter},
		{query: "?limit=201", typ: typeInvalidParameter},
		{query: "?limit=-1", typ: typeInvalidParameter},
		{query: "?limit=abc", typ: typeInvalidParameter},
		{query: "?limit=1.5", typ: typeInvalidParameter},
		{query: "?limit=1e2", typ: typeInvalidParameter},
		{query: "?limit=%2010", typ: typeInvalidParameter},
		{query: "?limit=99999999999999999999", typ: typeInvalidParameter},
		{query: "?before=abc", typ: typeInvalidCursor},
		{query: "?before=" + m.ID + "x", typ: typeInvalidCursor},
		{query: "?after=a-0", typ: typeInvalidCursor},
		{query: "?after=a-01", typ: typeInvalidCursor},
		{query: "?after=A-1", typ: typeInvalidCursor},
		{query: "?after=a-1-2", typ: typeInvalidCursor},
		{query: "?after=-1", typ: typeInvalidCursor},
		{query: "?after=a-%2B1", typ: typeInvalidCursor},
		{query: "?after=a-1%0A", typ: typeInvalidCursor},
		{query: "?after=*", typ: typeInvalidCursor},
		{query: "?before=" + m.ID + "&after=" + m.ID, typ: typeInvalidCursor},
		{query: "?after=" + m.ID + "&limit=0", typ: typeInvalidParameter},
	}
	for _, tt := range tests {
		resp, body := s.do(t, http.MethodGet, "/rooms/r/messages"+tt.query, "")
		wantProblem(t, resp, body, http.StatusBadRequest, tt.typ)
	}
}
