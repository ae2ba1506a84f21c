package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// directoryRoom is the JSON of a room in a GET /rooms answer.
type directoryRoom struct {
	Room         string  `json:"room"`
	Title        string  `json:"title"`
	LastActivity string  `json:"last_activity"`
	LastMessage  message `json:"last_message"`
	Seq          int64   `json:"seq"`
	Watchers     int64   `json:"watchers"`
	Users        int64   `json:"users"`
}

// directoryPage is the JSON of a GET /rooms answer.
type directoryPage struct {
	Rooms []directoryRoom `json:"rooms"`
	Next  string          `json:"next"`
}

// directory pages through GET /rooms with query, returning the rooms'
// names in order and the last page. It checks the order: last activity
// (which is RFC 3339 with milliseconds, so ordered as text), then room id,
// both descending.
func (s *testServer) directory(t testing.TB, query url.Values, header ...string) ([]string, directoryPage) {
	t.Helper()
	var names []string
	var page directoryPage
	var prev directoryRoom
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("the directory does not end")
		}
		resp, body := s.do(t, http.MethodGet, "/rooms?"+query.Encode(), "", header...)
		expectStatus(t, resp, body, http.StatusOK, "")
		page = directoryPage{}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("directory %s: %v", body, err)
		}
		for _, r := range page.Rooms {
			if prev.Room != "" && (r.LastActivity > prev.LastActivity || r.LastActivity == prev.LastActivity && r.Room >= prev.Room) {
				t.Fatalf("room %s (%s) listed after %s (%s): want newest first", r.Room, r.LastActivity, prev.Room, prev.LastActivity)
			}
			prev = r
			names = append(names, r.Room)
		}
		if page.Next == "" {
			return names, page
		}
		query.Set("cursor", page.Next)
	}
}

func TestRoomDirectory(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	for _, room := range []string{"b1", "a1", "a2", "b2", "a1"} {
		keyPost(t, s, room, "hi "+room)
	}
	s.putSettings(t, "a2", `{"title":"Second"}`)
	key := apiKey(testKey)

	names, _ := s.directory(t, url.Values{}, key...)
	if got := slices.Sorted(slices.Values(names)); !slices.Equal(got, []string{"a1", "a2", "b1", "b2"}) {
		t.Fatalf("directory = %q, want a1, a2, b1, b2", names)
	}
	// Posted to last, a1 comes first, unless b2 (posted to just before)
	// ties with it in the millisecond and wins by its id.
	if names[0] != "a1" && names[0] != "b2" {
		t.Fatalf("directory = %q, want a1 (posted to last) first", names)
	}
	paged, _ := s.directory(t, url.Values{"limit": {"1"}}, key...)
	if !slices.Equal(paged, names) {
		t.Fatalf("directory a room a page = %q, want %q", paged, names)
	}
	only, page := s.directory(t, url.Values{"prefix": {"a2"}}, key...)
	if !slices.Equal(only, []string{"a2"}) {
		t.Fatalf("prefix a2 = %q", only)
	}
	r := page.Rooms[0]
	if r.Title != "Second" || r.LastMessage.Text != "hi a2" || r.LastMessage.Room != "a2" || r.Seq != 1 || r.LastActivity == "" {
		t.Fatalf("room a2 = %+v, want its title, last message and seq", r)
	}
	// A token lists the rooms it may read, and only those.
	aOnly := bearer(hs256(t, "ann", jwt.MapClaims{"rooms": map[string]any{"read": []string{"a*"}}}))
	if got, _ := s.directory(t, url.Values{"limit": {"1"}}, aOnly...); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("directory of a token reading a* = %q, want a1, a2", got)
	}

	// A watcher of a1 shows in its presence counts.
	c := s.openStream(t, "/rooms/a1/stream", bearer(hs256(t, "ann", nil))...)
	c.awaitOpen()
	defer c.Close()
	waitFor(t, "a1 to have a watcher", func() bool {
		_, page := s.directory(t, url.Values{"prefix": {"a1"}}, key...)
		return len(page.Rooms) == 1 && page.Rooms[0].Users == 1 && page.Rooms[0].Watchers == 1
	})
}

func TestRoomDirectoryRefusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{Security: controlSecurity(t)})
	keyPost(t, s, "r", "hi")
	key := apiKey(testKey)
	for _, tc := range []struct {
		name, path string
		header     []string
		status     int
		typ        string
	}{
		{name: "no token", path: "/rooms", status: 401, typ: probUnauthorized},
		{name: "unknown key", path: "/rooms", header: apiKey(testKey + "x"), status: 401, typ: probUnauthorized},
		{name: "limit 0", path: "/rooms?limit=0", header: key, status: 400, typ: typeInvalidParameter},
		{name: "limit 101", path: "/rooms?limit=101", header: key, status: 400, typ: typeInvalidParameter},
		{name: "limit empty", path: "/rooms?limit=", header: key, status: 400, typ: typeInvalidParameter},
		{name: "bad prefix", path: "/rooms?prefix=a*", header: key, status: 400, typ: typeInvalidParameter},
		{name: "empty prefix", path: "/rooms?prefix=", header: key, status: 400, typ: typeInvalidParameter},
		{name: "bad cursor", path: "/rooms?cursor=x", header: key, status: 400, typ: typeInvalidCursor},
		{name: "cursor of another kind", path: "/rooms?cursor=abc-1", header: key, status: 400, typ: typeInvalidCursor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do(t, http.MethodGet, tc.path, "", tc.header...)
			expectStatus(t, resp, body, tc.status, tc.typ)
		})
	}
}
