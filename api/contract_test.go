package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
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
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.checkUnlisted(ctx, ex, http.StatusMethodNotAllowed, "MethodNotAllowed")
	case err != nil:
		return fmt.Errorf("find operation: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    withBody(ex.req, ex.reqBody),
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{},
	}
	status := ex.resp.StatusCode
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && (status < 400 || status > 499) {
		return fmt.Errorf("the spec rejects the request (%w), yet the server answered %d", err, status)
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
		return fmt.Errorf("%s answered %d: %w", in.Route.Operation.OperationID, ex.resp.StatusCode, err)
	}
	return nil
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
