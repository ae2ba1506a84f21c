package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
)

// readMark is the answer of PUT /rooms/{room}/read.
type readMark struct {
	Room     string `json:"room"`
	LastRead string `json:"last_read"`
	Unread   int64  `json:"unread"`
}

// roomRead is one room of GET /me/rooms.
type roomRead struct {
	Room        string   `json:"room"`
	LastRead    string   `json:"last_read"`
	Unread      int64    `json:"unread"`
	LastMessage *message `json:"last_message"`
}

type myRooms struct {
	Rooms []roomRead `json:"rooms"`
	Next  string     `json:"next"`
}

// postBy posts text to room as user (open mode).
func (s *testServer) postBy(t testing.TB, room, user, text string) message {
	t.Helper()
	resp, body := s.postAs(t, room, fmt.Sprintf(`{"text":%q,"user":%q}`, text, user))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST status = %d, want 201; body %s", resp.StatusCode, body)
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// markRead moves user's marker (open mode) and fails unless it is a 200.
func (s *testServer) markRead(t testing.TB, room, user, id string) readMark {
	t.Helper()
	resp, body := s.do(t, http.MethodPut, "/rooms/"+room+"/read", fmt.Sprintf(`{"id":%q,"user":%q}`, id, user),
		"Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT read status = %d, want 200; body %s", resp.StatusCode, body)
	}
	var m readMark
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// myRooms reads GET /me/rooms with query (open mode) and fails unless 200.
func (s *testServer) myRooms(t testing.TB, query string, header ...string) myRooms {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/me/rooms?"+query, "", header...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /me/rooms?%s status = %d, want 200; body %s", query, resp.StatusCode, body)
	}
	var out myRooms
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// redisSnapshot is every key in the test's Redis with its serialized
// value, for checking that a refused request stored nothing.
func (s *testServer) redisSnapshot(t testing.TB) string {
	t.Helper()
	rdb := s.Redis.Client()
	keys, err := rdb.Keys(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		dump, err := rdb.Dump(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%x\n", k, dump)
	}
	return b.String()
}

func TestReadMarkers(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	var ids []string
	for i := range 4 {
		ids = append(ids, s.postBy(t, "lobby", "ann", fmt.Sprint("hello ", i)).ID)
	}
	s.postBy(t, "support", "cy", "help")

	if got := s.markRead(t, "lobby", "bob", ids[1]); got != (readMark{Room: "lobby", LastRead: ids[1], Unread: 2}) {
		t.Fatalf("mark = %+v, want at the 2nd message with 2 unread", got)
	}
	// An older id (another tab behind) leaves the marker where it is.
	if got := s.markRead(t, "lobby", "bob", ids[0]); got != (readMark{Room: "lobby", LastRead: ids[1], Unread: 2}) {
		t.Fatalf("mark with an older id = %+v, want it left at the 2nd message", got)
	}
	// A post marks the room read up to it, ann's messages before it too.
	own := s.postBy(t, "lobby", "bob", "me too")
	got := s.myRooms(t, "user=bob")
	if len(got.Rooms) != 1 || got.Rooms[0].Room != "lobby" || got.Rooms[0].LastRead != own.ID ||
		got.Rooms[0].Unread != 0 || got.Rooms[0].LastMessage == nil || got.Rooms[0].LastMessage.ID != own.ID || got.Next != "" {
		t.Fatalf("bob's rooms = %+v, want lobby read up to his own post", got)
	}
	// Listed rooms: one with a marker, one without, one without messages.
	got = s.myRooms(t, "user=ann&rooms=support,lobby,empty")
	want := []roomRead{
		{Room: "support", Unread: 1},
		{Room: "lobby", LastRead: ids[3], Unread: 1},
		{Room: "empty"},
	}
	if len(got.Rooms) != len(want) {
		t.Fatalf("ann's rooms = %+v, want %d", got.Rooms, len(want))
	}
	for i, w := range want {
		g := got.Rooms[i]
		if g.Room != w.Room || g.LastRead != w.LastRead || g.Unread != w.Unread || (g.LastMessage == nil) != (w.Room == "empty") {
			t.Fatalf("ann's room %d = %+v, want %+v", i, g, w)
		}
	}
	// Without a user in open mode, the user is anonymous, as for posts.
	if got := s.myRooms(t, ""); len(got.Rooms) != 0 {
		t.Fatalf("anonymous's rooms = %+v, want none", got)
	}
}

func TestMyRoomsPages(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	var rooms []string
	for i := range 7 {
		room := fmt.Sprintf("r%02d", i)
		rooms = append(rooms, room)
		s.postBy(t, room, "ann", "x")
	}
	var seen []string
	query := "user=ann&limit=3"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages: %v", seen)
		}
		page := s.myRooms(t, query)
		for _, r := range page.Rooms {
			seen = append(seen, r.Room)
		}
		if page.Next == "" {
			break
		}
		query = "user=ann&limit=3&cursor=" + page.Next
	}
	if fmt.Sprint(seen) != fmt.Sprint(rooms) {
		t.Fatalf("pages = %v, want %v", seen, rooms)
	}
}

// TestReadRefusals: every refusal of PUT /rooms/{room}/read and GET
// /me/rooms has its status and problem type, and stores nothing.
func TestReadRefusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	m := s.postBy(t, "lobby", "ann", "hello")
	epoch, _, _ := strings.Cut(m.ID, "-")
	json := []string{"Content-Type", "application/json"}
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		typ                      string
	}{
		{name: "bad room", method: http.MethodPut, path: "/rooms/a*b/read", body: `{"id":"` + m.ID + `"}`, header: json, status: 400, typ: typeInvalidRoom},
		{name: "not JSON", method: http.MethodPut, path: "/rooms/lobby/read", body: `hello`, header: json, status: 400, typ: typeInvalidBody},
		{name: "no id", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"user":"bob"}`, header: json, status: 400, typ: typeInvalidBody},
		{name: "bad id", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"x"}`, header: json, status: 400, typ: typeInvalidBody},
		{name: "id not a string", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":1}`, header: json, status: 400, typ: typeInvalidBody},
		{name: "unknown field", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"` + m.ID + `","all":true}`, header: json, status: 400, typ: typeInvalidBody},
		{name: "bad user", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"` + m.ID + `","user":"a\nb"}`, header: json, status: 400, typ: typeInvalidBody},
		{name: "two objects", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"` + m.ID + `"}{}`, header: json, status: 400, typ: typeInvalidBody},
		{name: "not JSON media type", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"` + m.ID + `"}`, header: []string{"Content-Type", "text/plain"}, status: 415, typ: typeUnsupportedMedia},
		{name: "body too large", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"` + m.ID + `","user":"` + strings.Repeat("u", 2000) + `"}`, header: json, status: 413, typ: typeBodyTooLarge},
		{name: "room without messages", method: http.MethodPut, path: "/rooms/empty/read", body: `{"id":"` + m.ID + `"}`, header: json, status: 404, typ: typeNotFound},
		{name: "id of another epoch", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"zz-1"}`, header: json, status: 404, typ: typeNotFound},
		{name: "id after the last message", method: http.MethodPut, path: "/rooms/lobby/read", body: `{"id":"` + epoch + `-2"}`, header: json, status: 404, typ: typeNotFound},
		{name: "rooms empty", method: http.MethodGet, path: "/me/rooms?rooms=", status: 400, typ: typeInvalidParameter},
		{name: "rooms with a bad room", method: http.MethodGet, path: "/me/rooms?rooms=lobby,a*b", status: 400, typ: typeInvalidRoom},
		{name: "rooms too many", method: http.MethodGet, path: "/me/rooms?rooms=" + manyRooms(101), status: 400, typ: typeInvalidParameter},
		{name: "rooms with cursor", method: http.MethodGet, path: "/me/rooms?rooms=lobby&cursor=lobby", status: 400, typ: typeInvalidParameter},
		{name: "limit zero", method: http.MethodGet, path: "/me/rooms?limit=0", status: 400, typ: typeInvalidParameter},
		{name: "limit over 100", method: http.MethodGet, path: "/me/rooms?limit=101", status: 400, typ: typeInvalidParameter},
		{name: "bad cursor", method: http.MethodGet, path: "/me/rooms?cursor=a*b", status: 400, typ: typeInvalidCursor},
		{name: "empty user", method: http.MethodGet, path: "/me/rooms?user=", status: 400, typ: typeInvalidParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.redisSnapshot(t)
			resp, body := s.do(t, tc.method, tc.path, tc.body, tc.header...)
			wantProblem(t, resp, body, tc.status, tc.typ)
			if after := s.redisSnapshot(t); after != before {
				t.Fatalf("the refusal changed Redis:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func manyRooms(n int) string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprint("r", i)
	}
	return strings.Join(rooms, ",")
}

// TestReadAuth: the user is the token's subject, marking needs read
// permission, and GET /me/rooms refuses listed rooms the token may not
// read and leaves them out of the index.
func TestReadAuth(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret})})
	root := hs256(t, "root", nil)
	ann := hs256(t, "ann", nil)
	scoped := hs256(t, "ann", jwt.MapClaims{"rooms": map[string]any{"read": []string{"support-*"}}})
	var ids = map[string]string{}
	for _, room := range []string{"lobby", "support-1"} {
		resp, body := s.postAs(t, room, `{"text":"x"}`, bearer(root)...)
		expectStatus(t, resp, body, http.StatusCreated, "")
		var m message
		_ = json.Unmarshal(body, &m)
		ids[room] = m.ID
	}
	mark := func(room, body string, header ...string) (*http.Response, []byte) {
		return s.do(t, http.MethodPut, "/rooms/"+room+"/read", body, append([]string{"Content-Type", "application/json"}, header...)...)
	}
	for _, room := range []string{"lobby", "support-1"} {
		resp, body := mark(room, `{"id":"`+ids[room]+`"}`, bearer(ann)...)
		expectStatus(t, resp, body, http.StatusOK, "")
	}
	before := s.redisSnapshot(t)
	for _, tc := range []struct {
		name   string
		resp   func() (*http.Response, []byte)
		status int
		typ    string
	}{
		{name: "mark without a token", resp: func() (*http.Response, []byte) { return mark("lobby", `{"id":"`+ids["lobby"]+`"}`) }, status: 401, typ: probUnauthorized},
		{name: "mark as another user", resp: func() (*http.Response, []byte) {
			return mark("lobby", `{"id":"`+ids["lobby"]+`","user":"bob"}`, bearer(ann)...)
		}, status: 403, typ: probForbidden},
		{name: "mark without read permission", resp: func() (*http.Response, []byte) {
			return mark("lobby", `{"id":"`+ids["lobby"]+`"}`, bearer(scoped)...)
		}, status: 403, typ: probForbidden},
		{name: "list without a token", resp: func() (*http.Response, []byte) { return s.do(t, http.MethodGet, "/me/rooms", "") }, status: 401, typ: probUnauthorized},
		{name: "list as another user", resp: func() (*http.Response, []byte) {
			return s.do(t, http.MethodGet, "/me/rooms?user=bob", "", bearer(ann)...)
		}, status: 403, typ: probForbidden},
		{name: "list a room the token may not read", resp: func() (*http.Response, []byte) {
			return s.do(t, http.MethodGet, "/me/rooms?rooms=support-1,lobby", "", bearer(scoped)...)
		}, status: 403, typ: probForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.resp()
			expectStatus(t, resp, body, tc.status, tc.typ)
			if after := s.redisSnapshot(t); after != before {
				t.Fatalf("the refusal changed Redis:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	if got := s.myRooms(t, "", bearer(ann)...); len(got.Rooms) != 2 {
		t.Fatalf("ann's rooms = %+v, want lobby and support-1", got)
	}
	// The same user with a narrower token sees only the rooms it may read.
	got := s.myRooms(t, "", bearer(scoped)...)
	if len(got.Rooms) != 1 || got.Rooms[0].Room != "support-1" || got.Rooms[0].LastRead != ids["support-1"] {
		t.Fatalf("ann's rooms with a support-* token = %+v, want support-1 only", got)
	}
}

// TestReadServerKey: the backend's server API key marks and reads on
// behalf of any user.
func TestReadServerKey(t *testing.T) {
	t.Parallel()
	s := authServer(t, api.Security{APIKeys: testAPIKeys(t), Tokens: verifier(t, auth.Config{Secret: testSecret})})
	resp, body := s.postAs(t, "lobby", `{"text":"x","user":"ann"}`, apiKey(testKey)...)
	expectStatus(t, resp, body, http.StatusCreated, "")
	var m message
	_ = json.Unmarshal(body, &m)
	resp, body = s.do(t, http.MethodPut, "/rooms/lobby/read", `{"id":"`+m.ID+`","user":"bob"}`,
		append([]string{"Content-Type", "application/json"}, apiKey(testKey)...)...)
	expectStatus(t, resp, body, http.StatusOK, "")
	got := s.myRooms(t, "", bearer(hs256(t, "bob", nil))...)
	if len(got.Rooms) != 1 || got.Rooms[0].LastRead != m.ID {
		t.Fatalf("bob's rooms after the backend marked them = %+v", got)
	}
	if got := s.myRooms(t, "user=ann", apiKey(testKey)...); len(got.Rooms) != 1 || got.Rooms[0].Unread != 0 {
		t.Fatalf("ann's rooms read with the server key = %+v, want lobby with her own post read", got)
	}
}
