package api_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the hostile-input table in api/README.md")

// hostile is one hostile request of TestHostileInputs, and its row in the
// table in api/README.md.
type hostile struct {
	input   string // what is hostile
	request string // where it is sent
	send    func(t *testing.T, h *hostileEnv) (*http.Response, []byte)
	status  int
	problem string // the problem type's last part, "" for success
	note    string // what else the test checked
}

// hostileEnv is the server the hostile requests go to: authentication on,
// posts limited to a burst of 5, bodies due within 300ms.
type hostileEnv struct {
	s      *testServer
	stream *sseClient // on room "inject", authorised
	users  int
}

// token is a valid token, allowed every room, for a user of its own, so
// that one row's posts do not count against another's rate limit.
func (h *hostileEnv) token(t *testing.T, sub string) string {
	h.users++
	return hs256(t, fmt.Sprintf("%s-%d", sub, h.users), nil)
}

// post sends body to room as sub with extra header pairs.
func (h *hostileEnv) post(t *testing.T, sub, room, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return h.s.postAs(t, room, body, append(bearer(h.token(t, sub)), header...)...)
}

// postText posts text to the room with a stream and checks that the
// stream gives it back as one message event with the text intact.
func postText(text string) func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
	return func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
		t.Helper()
		body := fmt.Sprintf(`{"text":%s}`, jsonString(text))
		resp, data := h.post(t, "writer", "inject", body)
		if resp.StatusCode == http.StatusCreated {
			if m := h.stream.nextMessage(); m.Text != text {
				t.Fatalf("streamed text %q, want %q", m.Text, text)
			}
		}
		return resp, data
	}
}

// rawBody reads the body of an answer from rawRequest.
func rawBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func jsonString(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func hostileInputs() []hostile {
	get := func(path string, header ...string) func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
		return func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			return h.s.do(t, http.MethodGet, path, "", append(bearer(h.token(t, "reader")), header...)...)
		}
	}
	postBody := func(room, body string, header ...string) func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
		return func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			return h.post(t, "poster", room, body, header...)
		}
	}
	sendToken := func(token func(t *testing.T) string) func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
		return func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			return h.s.postAs(t, "r", `{"text":"x"}`, bearer(token(t))...)
		}
	}
	return []hostile{
		{input: "Room id with a glob character", request: "`POST /rooms/a*b/messages`", send: postBody("a*b", `{"text":"x"}`), status: 400, problem: "invalid-room"},
		{input: "Room id with a Redis hash tag", request: "`POST /rooms/%7Bx%7D/messages`", send: postBody("%7Bx%7D", `{"text":"x"}`), status: 400, problem: "invalid-room"},
		{input: "Room id with an escaped path traversal", request: "`POST /rooms/..%2F..%2Fadmin/messages`", send: postBody("..%2F..%2Fadmin", `{"text":"x"}`), status: 400, problem: "invalid-room"},
		{input: "Room id with an escaped NUL", request: "`POST /rooms/r%00/messages`", send: postBody("r%00", `{"text":"x"}`), status: 400, problem: "invalid-room"},
		{input: "Room id of 129 characters", request: "`POST /rooms/rrr…/messages`", send: postBody(strings.Repeat("r", 129), `{"text":"x"}`), status: 400, problem: "invalid-room"},
		{input: "Body that is not JSON", request: "`POST`, body `hello`", send: postBody("r", `hello`), status: 400, problem: "invalid-body"},
		{input: "Unknown field", request: "`POST`, body `{\"text\":\"x\",\"admin\":true}`", send: postBody("r", `{"text":"x","admin":true}`), status: 400, problem: "invalid-body"},
		{input: "Field name in other case", request: "`POST`, body `{\"TEXT\":\"x\"}`", send: postBody("r", `{"TEXT":"x"}`), status: 400, problem: "invalid-body"},
		{input: "Two JSON objects", request: "`POST`, body `{\"text\":\"a\"}{\"text\":\"b\"}`", send: postBody("r", `{"text":"a"}{"text":"b"}`), status: 400, problem: "invalid-body"},
		{input: "Invalid UTF-8", request: "`POST`, body with byte 0xFF in the text", send: postBody("r", "{\"text\":\"\xff\"}"), status: 400, problem: "invalid-body"},
		{input: "Lone UTF-16 surrogate", request: "`POST`, body `{\"text\":\"\\ud800\"}`", send: postBody("r", `{"text":"\ud800"}`), status: 400, problem: "invalid-body"},
		{input: "JSON nested 10 000 deep", request: "`POST`, body `{\"text\":[[[[…]]]]}`", send: postBody("r", `{"text":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}`), status: 400, problem: "invalid-body"},
		{input: "Text one byte over MAX_MESSAGE_BYTES", request: "`POST`, 4097-byte text", send: postBody("r", `{"text":"`+strings.Repeat("x", 4097)+`"}`), status: 400, problem: "invalid-body"},
		{input: "`user` with a line break", request: "`POST`, body `{\"text\":\"x\",\"user\":\"a\\nb\"}`", send: postBody("r", `{"text":"x","user":"a\nb"}`), status: 400, problem: "invalid-body"},
		{input: "Wrong media type", request: "`POST`, `Content-Type: text/plain`", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			return h.s.do(t, http.MethodPost, "/rooms/r/messages", `{"text":"x"}`, append(bearer(h.token(t, "poster")), "Content-Type", "text/plain")...)
		}, status: 415, problem: "unsupported-media-type"},
		{input: "Idempotency-Key of 200 characters", request: "`POST`, `Idempotency-Key: kkk…`", send: postBody("r", `{"text":"x"}`, "Idempotency-Key", strings.Repeat("k", 200)), status: 400, problem: "invalid-parameter"},
		{input: "Declared 100 MB body", request: "`POST`, `Content-Length: 104857600`", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			resp, _ := rawRequest(t, h.s, []string{"POST /rooms/r/messages HTTP/1.1", "Host: roomcast", "Content-Type: application/json",
				"Authorization: Bearer " + h.token(t, "poster"), "Content-Length: 104857600"}, `{"text":"`)
			return resp, rawBody(t, resp)
		}, status: 413, problem: "body-too-large", note: "answered before the body is read"},
		{input: "Body trickled in (slowloris)", request: "`POST`, 9 of 100 bytes, then silence", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			resp, took := rawRequest(t, h.s, []string{"POST /rooms/r/messages HTTP/1.1", "Host: roomcast", "Content-Type: application/json",
				"Authorization: Bearer " + h.token(t, "poster"), "Content-Length: 100"}, `{"text":"`)
			if took < 300*time.Millisecond {
				t.Fatalf("answered after %v, before BODY_READ_TIMEOUT", took)
			}
			return resp, rawBody(t, resp)
		}, status: 408, problem: "request-timeout", note: "after BODY_READ_TIMEOUT"},
		{input: "Text forging an SSE event", request: "`POST`, text `hi\\n\\nevent: admin\\ndata: {…}\\nid: 9-9\\n\\n`", send: postText("hi\n\nevent: admin\ndata: {\"user\":\"root\"}\nid: 9-9\n\n"), status: 201, note: "streamed as one event, text intact"},
		{input: "Text with bare CRs", request: "`POST`, text `a\\rdata: b\\r\\rc`", send: postText("a\rdata: b\r\rc"), status: 201, note: "streamed as one event, text intact"},
		{input: "Text with NUL and ESC", request: "`POST`, text `\\u0000\\u001b[31m`", send: postText("\x00\x1b[31m"), status: 201, note: "streamed as one event, text intact"},
		{input: "4 KiB of emoji", request: "`POST`, 1024 × 😀", send: postText(strings.Repeat("😀", 1024)), status: 201, note: "streamed as one event, text intact"},
		{input: "Unicode line separators", request: "`POST`, text `a\\u2028b\\u2029c\\u0085d`", send: postText("a\u2028b\u2029c\u0085d"), status: 201, note: "streamed as one event, text intact"},
		{input: "Text of white space only", request: "`POST`, text `\\u3000\\n\\t`", send: postBody("r", `{"text":"\u3000\n\t"}`), status: 400, problem: "invalid-body"},
		{input: "SQL in a cursor", request: "`GET ?before=1-1' OR 1=1--`", send: get("/rooms/r/messages?before=1-1%27%20OR%201=1--"), status: 400, problem: "invalid-cursor"},
		{input: "Cursor past 2^53", request: "`GET ?after=a-99999999999999999999`", send: get("/rooms/r/messages?after=a-99999999999999999999"), status: 400, problem: "invalid-cursor"},
		{input: "Huge limit", request: "`GET ?limit=1e9`", send: get("/rooms/r/messages?limit=1e9"), status: 400, problem: "invalid-parameter"},
		{input: "Last-Event-ID that is not an id", request: "stream, `Last-Event-ID: a-1 OR 1=1`", send: get("/rooms/r/stream", "Last-Event-ID", "a-1 OR 1=1"), status: 400, problem: "invalid-cursor"},
		{input: "last_event_id with CRLF", request: "`GET /rooms/r/stream?last_event_id=a-1%0D%0Aevent:x`", send: get("/rooms/r/stream?last_event_id=a-1%0D%0Aevent:x"), status: 400, problem: "invalid-cursor"},
		{input: "No token", request: "`POST` without `Authorization`", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			return h.s.postAs(t, "r", `{"text":"x"}`)
		}, status: 401, problem: "unauthorized"},
		{input: "Token with `alg: none`", request: "`POST`, unsigned token", send: sendToken(func(t *testing.T) string {
			s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "root", "exp": time.Now().Add(time.Hour).Unix()}).
				SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}), status: 401, problem: "unauthorized"},
		{input: "Expired token", request: "`POST`, `exp` an hour ago", send: sendToken(func(t *testing.T) string {
			return hs256(t, "alice", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})
		}), status: 401, problem: "token-expired"},
		{input: "Token signed with another key", request: "`POST`, forged HS256 token", send: sendToken(func(t *testing.T) string {
			return mint(t, jwt.SigningMethodHS256, []byte("guessed-secret-guessed-secret-guessed"), "root", nil)
		}), status: 401, problem: "unauthorized"},
		{input: "Token in the query of a post", request: "`POST ?access_token=…`", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			return h.s.do(t, http.MethodPost, "/rooms/r/messages?access_token="+h.token(t, "alice"), `{"text":"x"}`, "Content-Type", "application/json")
		}, status: 401, problem: "unauthorized"},
		{input: "Posting as someone else", request: "`POST`, body `\"user\"` other than the token's `sub`", send: postBody("r", `{"text":"x","user":"bob"}`), status: 403, problem: "forbidden"},
		{input: "Room outside the token's rooms", request: "`POST /rooms/lobby`, token for `support-*`", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			token := hs256(t, "sam", jwt.MapClaims{"rooms": map[string]any{"read": []string{"support-*"}, "write": []string{"support-*"}}})
			return h.s.postAs(t, "lobby", `{"text":"x"}`, bearer(token)...)
		}, status: 403, problem: "forbidden"},
		{input: "Post flood", request: "6th `POST` within a burst of 5", send: func(t *testing.T, h *hostileEnv) (*http.Response, []byte) {
			flooder := bearer(hs256(t, "flooder", nil))
			for range 5 {
				if resp, body := h.s.postAs(t, "flood", `{"text":"x"}`, flooder...); resp.StatusCode != http.StatusCreated {
					t.Fatalf("post within the burst: %d %s", resp.StatusCode, body)
				}
			}
			resp, body := h.s.postAs(t, "flood", `{"text":"x"}`, flooder...)
			if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Remaining") != "0" {
				t.Fatalf("429 headers %v", resp.Header)
			}
			return resp, body
		}, status: 429, problem: "rate-limited", note: "with `Retry-After` and `RateLimit-*`"},
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	h := &hostileEnv{s: startServer(t, serverConfig{Redis: r, Security: api.Security{
		Tokens:          verifier(t, auth.Config{Secret: testSecret}),
		Posts:           redisscripts.NewRateLimiter(r.Client(), redisscripts.NewKeys("roomcast:"), "post", 1.0/60, 5),
		BodyReadTimeout: 300 * time.Millisecond,
	}})}
	h.stream = h.s.openStream(t, "/rooms/inject/stream", bearer(hs256(t, "watcher", nil))...)
	h.stream.awaitOpen()

	cases := hostileInputs()
	var table strings.Builder
	table.WriteString("| Hostile input | Request | Answer |\n| --- | --- | --- |\n")
	for _, tc := range cases {
		t.Run(tc.input, func(t *testing.T) {
			resp, body := tc.send(t, h)
			typ := ""
			if tc.problem != "" {
				typ = "urn:roomcast:problem:" + tc.problem
			}
			expectStatus(t, resp, body, tc.status, typ)
		})
		answer := fmt.Sprintf("%d %s", tc.status, http.StatusText(tc.status))
		if tc.problem != "" {
			answer += ", `" + tc.problem + "`"
		}
		if tc.note != "" {
			answer += "; " + tc.note
		}
		fmt.Fprintf(&table, "| %s | %s | %s |\n", tc.input, tc.request, answer)
	}
	for room, want := range map[string]int{"r": 0, "lobby": 0, "inject": 5, "flood": 5} {
		if got := h.s.historyLen(t, room); got != want {
			t.Fatalf("room %s holds %d messages, want %d: a rejected request stored something", room, got, want)
		}
	}
	checkREADMETable(t, table.String())
}

const (
	tableBegin = "<!-- hostile-inputs: generated by TestHostileInputs in api/hostile_test.go -->\n"
	tableEnd   = "<!-- /hostile-inputs -->"
)

// checkREADMETable fails unless api/README.md holds table between the markers;
// with -update-readme it writes it there instead.
func checkREADMETable(t *testing.T, table string) {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	begin := strings.Index(readme, tableBegin)
	end := strings.Index(readme, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("api/README.md lacks the markers %q and %q", tableBegin, tableEnd)
	}
	current := readme[begin+len(tableBegin) : end]
	if current == table {
		return
	}
	if *updateREADME {
		updated := readme[:begin+len(tableBegin)] + table + readme[end:]
		if err := os.WriteFile("README.md", []byte(updated), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("api/README.md's hostile-input table is not what the test sent; run\n"+
		"  go test ./api -run TestHostileInputs -update-readme\nwant:\n%s", table)
}
