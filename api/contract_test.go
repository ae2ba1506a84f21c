package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"roomcast/api"
	"roomcast/redisscripts"
)

// checkedClient is http.DefaultClient with every exchange checked against
// openapi.yaml: Do returns an error for a request or answer that the spec
// does not allow, so spec and server cannot drift apart unnoticed. The
// harness sends every request through it.
var checkedClient = &http.Client{Transport: contractTransport{next: http.DefaultTransport}}

// loadContract reads and validates ../openapi.yaml once per test binary.
var loadContract = sync.OnceValues(func() (*contract, error) { return newContract("../openapi.yaml") })

// contract is openapi.yaml, ready to check HTTP exchanges with kin-openapi.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

func newContract(path string) (*contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate %s: %w", path, err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", path, err)
	}
	// The chat page's files are text (the SVG too, and several ranges of
	// one) that kin-openapi has no decoder for; the spec describes each as
	// a string.
	for _, mediaType := range []string{"text/html", "text/javascript", "text/css", "image/svg+xml", "multipart/byteranges"} {
		openapi3filter.RegisterBodyDecoder(mediaType, openapi3filter.PlainBodyDecoder)
	}
	return &contract{doc: doc, router: router}, nil
}

// exchange is one request and its answer. respBody is nil for an event
// stream, whose body is left to the caller.
type exchange struct {
	req      *http.Request
	reqBody  []byte
	resp     *http.Response
	respBody []byte
	stream   bool
}

// check returns an error unless the spec allows the exchange: the answer's
// status must be listed for the operation (or be the documented 404/405 for
// an unlisted path or method) and its headers and body must match; a request
// the spec rejects must be answered with a 4xx. Event streams are checked
// up to their headers.
func (c *contract) check(ctx context.Context, ex exchange) error {
	route, params, err := c.route(ex.req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return c.checkUnlisted(ctx, ex, http.StatusNotFound, "NotFound")
	case errors.Is(err, routers.ErrMethodNotAllowed) && ex.req.Method == http.MethodOptions:
		return checkOptions(ex)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.checkUnlisted(ctx, ex, http.StatusMethodNotAllowed, "MethodNotAllowed")
	case err != nil:
		return fmt.Errorf("find operation: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    withBody(ex.req, ex.reqBody),
		PathParams: params,
		Route:      route,
		// The server, not the contract, decides whether a token is good;
		// the contract only says where tokens go.
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	status := ex.resp.StatusCode
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && (status < 400 || status > 499) {
		return fmt.Errorf("the spec rejects the request (%s), yet the server answered %d", brief(err), status)
	}
	if ex.stream {
		documented := route.Operation.Responses.Status(status)
		if documented != nil && documented.Value.Content.Get(ex.resp.Header.Get("Content-Type")) == nil {
			return fmt.Errorf("%s: status %d is not documented as an event stream", route.Operation.OperationID, status)
		}
	}
	return validateResponse(ctx, in, ex)
}

// route finds the operation of req. Echo routes an empty path segment to
// the operation with an empty parameter, which the handler answers as a bad
// room id; the spec's router matches nothing for it. So an empty segment is
// routed as a space, which the room id pattern rejects just the same.
func (c *contract) route(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := c.router.FindRoute(req)
	if !errors.Is(err, routers.ErrPathNotFound) || !strings.Contains(req.URL.Path, "//") {
		return route, params, err
	}
	alt := req.Clone(req.Context())
	alt.URL.Path, alt.URL.RawPath = strings.ReplaceAll(req.URL.Path, "//", "/ /"), ""
	return c.router.FindRoute(alt)
}

// checkUnlisted checks the answer to a path or method that the spec does
// not list against the component response that info.description names for
// it.
func (c *contract) checkUnlisted(ctx context.Context, ex exchange, status int, response string) error {
	if ex.resp.StatusCode != status {
		return fmt.Errorf("the spec does not list this path and method, so the answer must be %d, not %d",
			status, ex.resp.StatusCode)
	}
	op := &openapi3.Operation{
		OperationID: response,
		Responses:   openapi3.NewResponses(openapi3.WithStatus(status, c.doc.Components.Responses[response])),
	}
	in := &openapi3filter.RequestValidationInput{
		Request: withBody(ex.req, ex.reqBody),
		Route:   &routers.Route{Spec: c.doc, Path: ex.req.URL.Path, Method: ex.req.Method, Operation: op},
	}
	return validateResponse(ctx, in, ex)
}

func validateResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, ex exchange) error {
	err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 ex.resp.StatusCode,
		Header:                 ex.resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(ex.respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: ex.stream},
	})
	if err != nil {
		return fmt.Errorf("%s answered %d: %s", in.Route.Operation.OperationID, ex.resp.StatusCode, brief(err))
	}
	return nil
}

// checkOptions checks the answer to OPTIONS on a listed path, which
// info.description promises for every path.
func checkOptions(ex exchange) error {
	if ex.resp.StatusCode != http.StatusNoContent || ex.resp.Header.Get("Allow") == "" {
		return fmt.Errorf("OPTIONS answered %d with Allow %q, want 204 with the allowed methods",
			ex.resp.StatusCode, ex.resp.Header.Get("Allow"))
	}
	return nil
}

// brief drops the schema and value dumps that kin-openapi appends to a
// schema error, which can run to hundreds of lines.
func brief(err error) string {
	text := err.Error()
	if i := strings.Index(text, "\nSchema:"); i >= 0 {
		text = text[:i]
	}
	return strings.TrimSpace(text)
}

func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	return r
}

// contractTransport is an http.RoundTripper that checks each exchange with
// the contract after next has carried it out. It reads whole answers, except
// event streams, whose body it hands on unread.
type contractTransport struct {
	next http.RoundTripper
}

// CloseIdleConnections closes next's idle connections, so that
// checkedClient.CloseIdleConnections works as it does on any client.
func (t contractTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	out := req
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		reqBody, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("contract: read request body: %w", err)
		}
		out = req.Clone(req.Context())
		out.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	c, err := loadContract()
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	ex := exchange{req: req, reqBody: reqBody, resp: resp}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ex.stream = mediaType == "text/event-stream"; !ex.stream {
		ex.respBody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("contract: read answer: %w", err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(ex.respBody))
	}
	if err := c.check(req.Context(), ex); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("contract: %s %s: %w", req.Method, req.URL.RequestURI(), err)
	}
	return resp, nil
}

// TestContractRejectsViolations proves that the contract check can fail:
// a fake server gives answers that break openapi.yaml in one way each.
func TestContractRejectsViolations(t *testing.T) {
	const msg = `{"id":"mjuohs00-1","seq":1,"room":"r","user":"ada","text":"hi","time":"2026-01-01T09:30:00.123Z"}`
	const json, problem = "application/json", "application/problem+json"
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		answer       http.HandlerFunc
		wantErr      string // "" for an exchange the spec allows
	}{
		{name: "valid post", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer: reply(http.StatusCreated, json, msg)},
		{name: "valid unlisted path", method: http.MethodGet, path: "/nope",
			answer: reply(http.StatusNotFound, problem, `{"type":"urn:roomcast:problem:not-found","title":"Not Found","status":404}`)},
		{name: "valid OPTIONS", method: http.MethodOptions, path: "/healthz",
			answer: reply(http.StatusNoContent, "", "", "Allow", "OPTIONS, GET")},
		{name: "undocumented status", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer:  reply(http.StatusTeapot, problem, `{"type":"urn:roomcast:problem:internal","title":"x","status":418}`),
			wantErr: "status is not supported"},
		{name: "message without seq", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi"}`,
			answer:  reply(http.StatusCreated, json, strings.Replace(msg, `"seq":1,`, "", 1)),
			wantErr: `"/seq"`},
		{name: "time without milliseconds", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusOK, json, `{"messages":[`+strings.Replace(msg, ".123Z", "Z", 1)+`],"has_more":false}`),
			wantErr: `"/messages/0/time"`},
		{name: "problem type of another status", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusBadRequest, problem, `{"type":"urn:roomcast:problem:internal","title":"x","status":400}`),
			wantErr: `"/type"`},
		{name: "problem status unlike the answer's", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusBadRequest, problem, `{"type":"urn:roomcast:problem:invalid-room","title":"x","status":500}`),
			wantErr: `"/status"`},
		{name: "problem as plain JSON", method: http.MethodGet, path: "/rooms/r/messages",
			answer:  reply(http.StatusBadRequest, json, `{"type":"urn:roomcast:problem:invalid-room","title":"x","status":400}`),
			wantErr: "Content-Type has unexpected value"},
		{name: "503 without Retry-After", method: http.MethodGet, path: "/readyz",
			answer:  reply(http.StatusServiceUnavailable, problem, `{"type":"urn:roomcast:problem:unavailable","title":"x","status":503}`),
			wantErr: "Retry-After"},
		{name: "no X-Request-Id", method: http.MethodGet, path: "/healthz",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", json)
				_, _ = io.WriteString(w, `{"status":"ok"}`)
			},
			wantErr: "X-Request-Id"},
		{name: "bad room accepted", method: http.MethodPost, path: "/rooms/a*b/messages", body: `{"text":"hi"}`,
			answer: reply(http.StatusCreated, json, msg), wantErr: "the spec rejects the request"},
		{name: "unknown member accepted", method: http.MethodPost, path: "/rooms/r/messages", body: `{"text":"hi","x":1}`,
			answer: reply(http.StatusCreated, json, msg), wantErr: "the spec rejects the request"},
		{name: "stream without X-Accel-Buffering", method: http.MethodGet, path: "/rooms/r/stream",
			answer:  reply(http.StatusOK, "text/event-stream", "retry: 1000\n\n", "Cache-Control", "no-cache"),
			wantErr: "X-Accel-Buffering"},
		{name: "event stream where JSON is documented", method: http.MethodGet, path: "/healthz",
			answer:  reply(http.StatusOK, "text/event-stream", ": ping\n\n"),
			wantErr: "not documented as an event stream"},
		{name: "unlisted path answered", method: http.MethodGet, path: "/nope",
			answer: reply(http.StatusOK, json, `{}`), wantErr: "must be 404"},
		{name: "unlisted path with another problem type", method: http.MethodGet, path: "/nope",
			answer:  reply(http.StatusNotFound, problem, `{"type":"urn:roomcast:problem:internal","title":"x","status":404}`),
			wantErr: `"/type"`},
		{name: "unlisted method answered", method: http.MethodPut, path: "/healthz",
			answer: reply(http.StatusOK, json, `{"status":"ok"}`), wantErr: "must be 405"},
		{name: "OPTIONS without Allow", method: http.MethodOptions, path: "/healthz",
			answer: reply(http.StatusNoContent, "", ""), wantErr: "want 204 with the allowed methods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.answer)
			defer srv.Close()
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", json)
			}
			resp, err := checkedClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			t.Log(err)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("the check failed a valid exchange: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("the check passed an exchange that breaks the spec")
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// reply answers with status, a Content-Type (none if ""), body, an
// X-Request-Id and extra header pairs.
func reply(status int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "test")
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// TestContractServerAnswers provokes each documented answer that a test can
// cheaply cause. s.do checks every one against the spec, so this test fails
// where server and spec disagree, and the status checks here make sure that
// each documented answer really was seen.
func TestContractServerAnswers(t *testing.T) {
	type request struct {
		name, method, path, body string
		header                   []string
		want                     int
	}
	run := func(t *testing.T, s *testServer, reqs []request) {
		t.Helper()
		for _, r := range reqs {
			if resp, body := s.do(t, r.method, r.path, r.body, r.header...); resp.StatusCode != r.want {
				t.Fatalf("%s: status = %d, want %d; body %s", r.name, resp.StatusCode, r.want, body)
			}
		}
	}
	const post, get = http.MethodPost, http.MethodGet
	const protobufMetrics = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
	jsonBody := []string{"Content-Type", "application/json"}

	t.Run("open", func(t *testing.T) {
		s := startServer(t, serverConfig{MaxMessageBytes: 16})
		m := s.post(t, "r", "one")
		idem := append([]string{"Idempotency-Key", "k1"}, jsonBody...)
		_, page := s.do(t, get, "/", "")
		run(t, s, []request{
			{name: "post", method: post, path: "/rooms/r/messages", body: `{"text":"two","user":"ada"}`, header: idem, want: 201},
			{name: "replay", method: post, path: "/rooms/r/messages", body: `{"text":"two","user":"ada"}`, header: idem, want: 201},
			{name: "idempotency conflict", method: post, path: "/rooms/r/messages", body: `{"text":"three"}`, header: idem, want: 422},
			{name: "bad body", method: post, path: "/rooms/r/messages", body: `{"text":""}`, header: jsonBody, want: 400},
			{name: "empty room", method: post, path: "/rooms//messages", body: `{"text":"a"}`, header: jsonBody, want: 400},
			{name: "not JSON", method: post, path: "/rooms/r/messages", body: "hi", header: []string{"Content-Type", "text/plain"}, want: 415},
			{name: "too large", method: post, path: "/rooms/r/messages", body: `{"text":"` + strings.Repeat("a", 2000) + `"}`, header: jsonBody, want: 413},
			{name: "history", method: get, path: "/rooms/r/messages?limit=1", want: 200},
			{name: "history before", method: get, path: "/rooms/r/messages?before=" + m.ID, want: 200},
			{name: "history reset", method: get, path: "/rooms/r/messages?after=zz-1", want: 200},
			{name: "bad cursor", method: get, path: "/rooms/r/messages?before=x", want: 400},
			{name: "bad resume point", method: get, path: "/rooms/r/stream", header: []string{"Last-Event-ID", "x"}, want: 400},
			{name: "healthz", method: get, path: "/healthz", want: 200},
			{name: "readyz", method: get, path: "/readyz", want: 200},
			{name: "openapi", method: get, path: "/openapi.yaml", want: 200},
			{name: "metrics", method: get, path: "/metrics", want: 200},
			{name: "metrics as protobuf", method: get, path: "/metrics", header: []string{"Accept", protobufMetrics}, want: 200},
			{name: "page unchanged", method: get, path: "/", header: []string{"If-None-Match", pageETag(t, s, page)}, want: 304},
			{name: "asset", method: get, path: "/assets/app.js", want: 200},
			{name: "ranges ignored", method: get, path: "/assets/style.css", header: []string{"Range", "bytes=0-9"}, want: 200},
			{name: "missing asset", method: get, path: "/assets/nope.js", want: 404},
			{name: "unknown path", method: get, path: "/rooms/r", want: 404},
			{name: "unknown method", method: http.MethodDelete, path: "/rooms/r/messages", want: 405},
			{name: "HEAD", method: http.MethodHead, path: "/healthz", want: 405},
			{name: "OPTIONS", method: http.MethodOptions, path: "/rooms/r/messages", want: 204},
		})
		c := s.openStream(t, "/rooms/r/stream?last_event_id="+m.ID)
		c.awaitOpen()
		c.nextMessage()

		s.Redis.Kill()
		run(t, s, []request{
			{name: "post without Redis", method: post, path: "/rooms/r/messages", body: `{"text":"a"}`, header: jsonBody, want: 503},
			{name: "history without Redis", method: get, path: "/rooms/r/messages", want: 503},
		})
		deadline := time.Now().Add(10 * time.Second)
		for resp, _ := s.do(t, get, "/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable; resp, _ = s.do(t, get, "/readyz", "") {
			if time.Now().After(deadline) {
				t.Fatalf("readyz still answers %d 10s after Redis died", resp.StatusCode)
			}
			<-time.After(20 * time.Millisecond) // poll interval
		}
	})

	t.Run("secured", func(t *testing.T) {
		posts := &countingLimiter{allow: 2}
		s := authServer(t, api.Security{Posts: posts, MaxStreamsPerClient: 1})
		alice := bearer(hs256(t, "alice", nil))
		run(t, s, []request{
			{name: "no token", method: get, path: "/rooms/r/messages", want: 401},
			{name: "post", method: post, path: "/rooms/r/messages", body: `{"text":"hi"}`, header: append(alice, jsonBody...), want: 201},
			{name: "other user", method: post, path: "/rooms/r/messages", body: `{"text":"hi","user":"bob"}`, header: append(alice, jsonBody...), want: 403},
			{name: "over the rate", method: post, path: "/rooms/r/messages", body: `{"text":"hi"}`, header: append(alice, jsonBody...), want: 429},
		})
		c := s.openStream(t, "/rooms/r/stream?access_token="+hs256(t, "alice", nil))
		c.awaitOpen()
		run(t, s, []request{{name: "second stream", method: get, path: "/rooms/r/stream", header: alice, want: 429}})
	})

	// Bodies that no http.Client sends: the answer is read off a bare
	// connection and checked like any other.
	t.Run("raw", func(t *testing.T) {
		s := startServer(t, serverConfig{Security: api.Security{BodyReadTimeout: 200 * time.Millisecond}})
		for _, tc := range []struct {
			name   string
			length string // the declared Content-Length
			want   int
		}{
			{name: "body too slow", length: "100", want: http.StatusRequestTimeout},
			{name: "declared too large", length: "104857600", want: http.StatusRequestEntityTooLarge},
		} {
			const sent = `{"text":`
			resp, _ := rawRequest(t, s, []string{"POST /rooms/r/messages HTTP/1.1", "Host: roomcast",
				"Content-Type: application/json", "Content-Length: " + tc.length}, sent)
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("%s: read answer: %v", tc.name, err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("%s: status = %d, want %d; body %s", tc.name, resp.StatusCode, tc.want, body)
			}
			req, err := http.NewRequestWithContext(t.Context(), post, s.URL+"/rooms/r/messages", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			c, err := loadContract()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.check(t.Context(), exchange{req: req, reqBody: []byte(sent), resp: resp, respBody: body}); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
	})
}

// pageETag is the ETag of the chat page answer page was read from.
func pageETag(t testing.TB, s *testServer, page []byte) string {
	t.Helper()
	resp, body := s.do(t, http.MethodGet, "/", "")
	if etag := resp.Header.Get("ETag"); etag != "" && bytes.Equal(body, page) {
		return etag
	}
	t.Fatalf("the page has no stable ETag")
	return ""
}

// countingLimiter allows the first allow posts and refuses the rest.
type countingLimiter struct {
	mu    sync.Mutex
	allow int
}

func (l *countingLimiter) Allow(context.Context, string) (redisscripts.RateDecision, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allow--
	if l.allow < 0 {
		return redisscripts.RateDecision{Limit: 2, RetryAfter: time.Second, ResetAfter: 2 * time.Second}, nil
	}
	return redisscripts.RateDecision{Allowed: true, Limit: 2, Remaining: l.allow, ResetAfter: time.Second}, nil
}
