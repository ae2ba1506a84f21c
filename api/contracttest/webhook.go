package contracttest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// CheckWebhook checks a webhook request that a receiver got, with its
// body, against the document's webhook named by the body's type: its
// headers and its body must be what the webhooks section says.
func (c *Contract) CheckWebhook(ctx context.Context, req *http.Request, body []byte) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("webhook body: %w", err)
	}
	item := c.doc.Webhooks[head.Type]
	if item == nil || item.Post == nil {
		return fmt.Errorf("webhook type %q is not in the webhooks section", head.Type)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: withBody(req, body),
		Route:   &routers.Route{Spec: c.doc, Path: head.Type, PathItem: item, Method: http.MethodPost, Operation: item.Post},
		Options: &openapi3filter.Options{MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		return fmt.Errorf("webhook %s: %s", head.Type, brief(err))
	}
	return nil
}
