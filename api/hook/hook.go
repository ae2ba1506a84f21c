// Package hook asks the chat product's backend about each message before
// it is stored: a signed POST (Standard Webhooks headers) of the message to
// PUBLISH_HOOK_URL, answered with accept, accept with a rewrite, or reject.
package hook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"roomcast/api/auth"
	"roomcast/broker/webhook/signature"
)

// Message is what the backend is asked about: a post, or an edit of the
// message EditOf.
type Message struct {
	Room     string          `json:"room"`
	User     string          `json:"user"`
	Text     string          `json:"text"`
	Metadata json.RawMessage `json:"metadata,omitempty"` // a JSON object, or nil
	EditOf   string          `json:"edit_of,omitempty"`
}

// Verdict is the backend's answer. A rewrite replaces the text or the
// metadata (when non-nil) of an accepted message.
type Verdict struct {
	Accept   bool
	Reason   string // why a rejected message was rejected
	Text     *string
	Metadata json.RawMessage // a JSON value as sent; the caller checks it
}

// ErrNoAnswer wraps every failure to get a usable answer within the
// timeout: the caller decides, by its on-error policy, what happens then.
var ErrNoAnswer = errors.New("publish hook gave no usable answer")

// Options configure a Client.
type Options struct {
	URL     string
	Secret  signature.Secret
	Timeout time.Duration // the whole budget of one question, a retry included
	Rooms   []string      // room patterns ("*", "support-*", "lobby") the hook applies to
	Client  *http.Client  // nil: a client of its own
}

// Client asks the backend. It is safe for concurrent use.
type Client struct {
	opts Options
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Client == nil {
		// No redirects: the answer must come from the URL configured.
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Client{opts: opts}
}

// Applies reports whether messages of room are screened.
func (c *Client) Applies(room string) bool { return auth.MatchAny(c.opts.Rooms, room) }

// Screen asks the backend about m within the timeout. A connection that
// fails before any answer is tried once more while time is left. The
// error wraps ErrNoAnswer.
func (c *Client) Screen(ctx context.Context, m Message) (Verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	now := time.Now()
	body, err := json.Marshal(struct {
		Type      string  `json:"type"`
		Timestamp string  `json:"timestamp"`
		Data      Message `json:"data"`
	}{"message.publishing", now.UTC().Format("2006-01-02T15:04:05.000Z"), m})
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: encode: %w", ErrNoAnswer, err)
	}
	id := newID()
	for attempt := 0; ; attempt++ {
		v, retry, err := c.ask(ctx, id, now, body)
		if err == nil || !retry || attempt == 1 || ctx.Err() != nil {
			return v, err
		}
	}
}

// ask sends one request; retry tells that no answer came back at all.
func (c *Client) ask(ctx context.Context, id string, ts time.Time, body []byte) (v Verdict, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL, bytes.NewReader(body))
	if err != nil {
		return Verdict{}, false, fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	req.Header.Set("Content-Type", "application/json")
	c.opts.Secret.SetHeaders(req.Header, id, ts, body)
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		// Not the URL, which is logged with the error: it may carry a
		// credential.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Verdict{}, true, fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Verdict{}, false, fmt.Errorf("%w: read answer: %w", ErrNoAnswer, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Verdict{}, false, fmt.Errorf("%w: status %d", ErrNoAnswer, resp.StatusCode)
	}
	v, err = parseVerdict(answer)
	if err != nil {
		return Verdict{}, false, fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	return v, false, nil
}

// parseVerdict reads {"action": "accept", "text"?, "metadata"?} or
// {"action": "reject", "reason"?}; anything else is an error.
func parseVerdict(answer []byte) (Verdict, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(answer, &fields); err != nil || fields == nil {
		return Verdict{}, errors.New("the answer is not a JSON object")
	}
	var action string
	if err := json.Unmarshal(fields["action"], &action); err != nil {
		return Verdict{}, errors.New(`the answer has no "action" string`)
	}
	var v Verdict
	for name, value := range fields {
		switch {
		case name == "action":
		case name == "reason" && action == "reject":
			if err := json.Unmarshal(value, &v.Reason); err != nil {
				return Verdict{}, errors.New(`"reason" is not a string`)
			}
		case name == "text" && action == "accept":
			v.Text = new(string)
			if err := json.Unmarshal(value, v.Text); err != nil {
				return Verdict{}, errors.New(`"text" is not a string`)
			}
		case name == "metadata" && action == "accept":
			v.Metadata = value
		default:
			return Verdict{}, fmt.Errorf("unexpected member %q for action %q", name, action)
		}
	}
	switch action {
	case "accept":
		v.Accept = true
	case "reject":
	default:
		return Verdict{}, fmt.Errorf("unknown action %q", action)
	}
	return v, nil
}

// newID is a webhook-id of its own for each question.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "hook_" + hex.EncodeToString(b[:])
}
