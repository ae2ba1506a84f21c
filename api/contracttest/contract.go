// Package contracttest checks HTTP exchanges against roomcast's OpenAPI
// document in tests, with kin-openapi: an answer that openapi.yaml does not
// allow fails the request that got it.
package contracttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Client returns an http.Client like http.DefaultClient that checks every
// exchange against the OpenAPI document at specPath: Do returns an error
// for a request or answer that the document does not allow, so spec and
// server cannot drift apart unnoticed. The document is read at the first
// request.
func Client(specPath string) *http.Client {
	return &http.Client{Transport: transport{next: http.DefaultTransport, load: func() (*Contract, error) { return Load(specPath) }}}
}

// loaded holds each document Load has read, by path.
var loaded sync.Map // string → func() (*Contract, error)

// Load reads and validates the OpenAPI document at path, once per process.
func Load(path string) (*Contract, error) {
	once, _ := loaded.LoadOrStore(path, sync.OnceValues(func() (*Contract, error) { return newContract(path) }))
	return once.(func() (*Contract, error))()
}

// Check checks one exchange whose bodies have been read: req with reqBody,
// and resp with respBody. An event stream is checked up to its headers.
func (c *Contract) Check(ctx context.Context, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	return c.check(ctx, exchange{req: req, reqBody: reqBody, resp: resp, respBody: respBody, stream: isStream(resp)})
}

func isStream(resp *http.Response) bool {
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mediaType == "text/event-stream"
}

// Contract is an OpenAPI document, ready to check HTTP exchanges.
type Contract struct {
	doc    *openapi3.T
	router routers.Router
}

func newContract(path string) (*Contract, error) {
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
	// The chat page's files are text (the SVG too), and the spec is YAML
	// text; the spec describes each as a string.
	for _, mediaType := range []string{"text/html", "text/javascript", "text/css", "image/svg+xml", "application/yaml"} {
		openapi3filter.RegisterBodyDecoder(mediaType, openapi3filter.PlainBodyDecoder)
	}
	return &Contract{doc: doc, router: router}, nil
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
func (c *Contract) check(ctx context.Context, ex exchange) error {
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
func (c *Contract) route(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := c.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) && strings.Contains(req.URL.Path, "//") {
		alt := req.Clone(req.Context())
		alt.URL.Path, alt.URL.RawPath = strings.ReplaceAll(req.URL.Path, "//", "/ /"), ""
		route, params, err = c.router.FindRoute(alt)
	}
	// The router matches the escaped path and leaves path parameters
	// escaped; their values, which the schemas describe, are the decoded
	// ones (RFC 3986: %61 is "a").
	for name, value := range params {
		if decoded, uerr := url.PathUnescape(value); uerr == nil {
			params[name] = decoded
		}
	}
	return route, params, err
}

// checkUnlisted checks the answer to a path or method that the spec does
// not list against the component response that info.description names for
// it.
func (c *Contract) checkUnlisted(ctx context.Context, ex exchange, status int, response string) error {
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
	if err == nil {
		err = checkFinalNewline(ex)
	}
	if err != nil {
		return fmt.Errorf("%s answered %d: %s", in.Route.Operation.OperationID, ex.resp.StatusCode, brief(err))
	}
	return nil
}

// checkFinalNewline fails a JSON answer whose body does not end with a
// newline: roomcast ends every JSON answer with one, so that a terminal
// shows curl's output on lines of its own.
func checkFinalNewline(ex exchange) error {
	mediaType, _, _ := mime.ParseMediaType(ex.resp.Header.Get("Content-Type"))
	if mediaType != "application/json" && !strings.HasSuffix(mediaType, "+json") || len(ex.respBody) == 0 {
		return nil
	}
	if ex.respBody[len(ex.respBody)-1] != '\n' {
		return errors.New("the JSON answer does not end with a newline")
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

// transport is an http.RoundTripper that checks each exchange with the
// contract after next has carried it out. It reads whole answers, except
// event streams, whose body it hands on unread.
type transport struct {
	next http.RoundTripper
	load func() (*Contract, error)
}

// CloseIdleConnections closes next's idle connections, so that the
// client's CloseIdleConnections works as it does on any client.
func (t transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
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
	c, err := t.load()
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	ex := exchange{req: req, reqBody: reqBody, resp: resp, stream: isStream(resp)}
	if !ex.stream {
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
