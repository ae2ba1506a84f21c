package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	sse "github.com/tmaxmax/go-sse"
)

// The event types of a room stream. Streams may carry more types in
// future versions: a follower ignores the types it does not know.
const (
	EventMessage = "message" // Data is a Message
	EventEdit    = "edit"    // Data is the edited Message, its new version
	EventDelete  = "delete"  // Data is the deleted Message, its tombstone
	EventReset   = "reset"   // Data is a Reset: messages were lost to this client
	// EventBanned: Data is a BanEvent, the stream's user was banned from
	// the room; the stream ends, and Follow's reconnection is refused (a
	// *StreamError of status 403, problem type banned).
	EventBanned = "banned"
	// EventRevoked: Data is a RevokedEvent, the stream's token was
	// revoked; the stream ends, and Follow's reconnection with it is
	// refused (401, token-revoked).
	EventRevoked = "revoked"
)

// Event is one event of a stream, as the server sent it: its Type, its
// JSON payload Data, and LastEventID, the position that a reconnection
// resumes after (the id of the last message so far, as EventSource keeps
// it). Use the typed accessors to decode Data.
type Event struct {
	Type        string
	LastEventID string
	Data        json.RawMessage
}

// Message decodes a message, edit or delete event: each carries a
// Message, of which the copy with the highest Version is the newest. It
// fails for an event of another type.
func (e Event) Message() (Message, error) {
	var m Message
	typ := EventMessage
	if e.Type == EventEdit || e.Type == EventDelete {
		typ = e.Type
	}
	return m, e.decode(typ, &m)
}

// Reset decodes a reset event; it fails for an event of another type.
func (e Event) Reset() (Reset, error) {
	var r Reset
	return r, e.decode(EventReset, &r)
}

// Ban decodes a banned event; it fails for an event of another type.
func (e Event) Ban() (BanEvent, error) {
	var b BanEvent
	return b, e.decode(EventBanned, &b)
}

func (e Event) decode(typ string, v any) error {
	if e.Type != typ {
		return fmt.Errorf("roomcast: event is %q, not %q", e.Type, typ)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("roomcast: decode %s event: %w", typ, err)
	}
	return nil
}

// FollowOptions configure Follow. The zero value follows a room live,
// without a token, with http.DefaultClient.
type FollowOptions struct {
	// HTTPClient sends the stream requests; it must not have a Timeout,
	// which would end every stream. nil: http.DefaultClient.
	HTTPClient *http.Client
	// LastEventID resumes after this message id: the stream first replays
	// every retained message after it. "": live only, from the moment of
	// connection.
	LastEventID string
	// Token is a bearer token, for a server with authentication.
	Token string
	// OnReconnect, if set, is called before each reconnection with the
	// reason and the wait before it.
	OnReconnect func(err error, wait time.Duration)
}

// StreamError is the answer to a stream request that a retry cannot fix:
// a bad room id or resume point (400), a refused token (401, 403), or too
// many streams of this client (429).
type StreamError struct {
	StatusCode int
	Problem    *Problem // nil when the body was not problem details
}

func (e *StreamError) Error() string {
	if e.Problem != nil && e.Problem.Detail != nil {
		return fmt.Sprintf("roomcast: stream refused: %d %s: %s", e.StatusCode, e.Problem.Type, *e.Problem.Detail)
	}
	return fmt.Sprintf("roomcast: stream refused: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// maxEventBytes bounds one event; a message is far smaller.
const maxEventBytes = 1 << 20

// Follow streams the events of room on the roomcast server at server
// (such as "http://localhost:8080") to handle, one at a time and in order.
// When the connection ends (the server restarts, shuts down, drops a slow
// client, or the network fails) it reconnects after the delay that the
// server's `retry:` advised (±10%, so that clients spread out), growing
// while reconnections fail, and resumes
// with Last-Event-ID after the last message it handed over, so handle sees
// every message once, or a reset event where messages were lost.
//
// Follow blocks until ctx ends (it then returns ctx.Err()), handle returns
// an error (returned as is), or the server refuses the stream for good (a
// *StreamError).
func Follow(ctx context.Context, server, room string, opts FollowOptions, handle func(Event) error) error {
	u, err := url.JoinPath(server, "rooms", url.PathEscape(room), "stream")
	if err != nil {
		return fmt.Errorf("roomcast: stream URL: %w", err)
	}
	return follow(ctx, u, opts, handle)
}

// follow runs one stream at streamURL; it is the part that any stream
// (one room, or several rooms in future versions) shares.
func follow(ctx context.Context, streamURL string, opts FollowOptions, handle func(Event) error) error {
	if opts.LastEventID != "" {
		// The query, not the header: the library sends Last-Event-ID from
		// the events it has seen, and the server prefers that header, so
		// the query only counts until the first message arrives.
		u, err := url.Parse(streamURL)
		if err != nil {
			return fmt.Errorf("roomcast: stream URL: %w", err)
		}
		q := u.Query()
		q.Set("last_event_id", opts.LastEventID)
		u.RawQuery = q.Encode()
		streamURL = u.String()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	if err != nil {
		return fmt.Errorf("roomcast: stream request: %w", err)
	}
	if opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+opts.Token)
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	sc := &sse.Client{
		HTTPClient:        httpClient,
		OnRetry:           opts.OnReconnect,
		ResponseValidator: validateStream,
		// The server's retry: replaces InitialInterval as soon as it
		// arrives; the interval grows only while reconnections fail.
		Backoff: sse.Backoff{InitialInterval: 2 * time.Second, Multiplier: 1.5, Jitter: 0.1, MaxInterval: 30 * time.Second},
	}
	conn := sc.NewConnection(req)
	conn.Buffer(nil, maxEventBytes)
	var handleErr error
	conn.SubscribeToAll(func(ev sse.Event) {
		// As EventSource: a block without data (such as the retry: line)
		// is no event, and an unnamed event is a message.
		if handleErr != nil || ev.Data == "" {
			return
		}
		if ev.Type == "" {
			ev.Type = EventMessage
		}
		if handleErr = handle(Event{Type: ev.Type, LastEventID: ev.LastEventID, Data: json.RawMessage(ev.Data)}); handleErr != nil {
			cancel()
		}
	})
	err = conn.Connect()
	switch {
	case handleErr != nil:
		return handleErr
	case ctx.Err() != nil:
		return context.Cause(ctx)
	}
	var refused *StreamError
	if errors.As(err, &refused) {
		return refused
	}
	return fmt.Errorf("roomcast: stream: %w", err)
}

// validateStream accepts a 200 event stream and turns any other answer
// into a *StreamError, which the library does not retry.
func validateStream(resp *http.Response) error {
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusOK && mediaType == "text/event-stream" {
		return nil
	}
	refused := &StreamError{StatusCode: resp.StatusCode}
	if strings.HasSuffix(mediaType, "json") {
		var p Problem
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p); err == nil {
			refused.Problem = &p
		}
	}
	return refused
}
