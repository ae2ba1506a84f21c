// Package api is roomcast's HTTP interface: posting and paging room
// messages, streaming them as Server-Sent Events, and health probes.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/cursor"
	"roomcast/api/metrics"
	"roomcast/api/sse"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// MessageStore stores and reads room messages.
type MessageStore interface {
	Post(ctx context.Context, p chat.Post) (chat.Posted, error)
	// PostMany stores each post as Post does and returns their results
	// in order; one failing changes nothing for the others.
	PostMany(ctx context.Context, posts []chat.Post) []chat.PostResult
	History(ctx context.Context, room string, q chat.Query) (chat.Page, error)
	// Message returns the latest version of one message, or
	// chat.ErrUnknownMessage.
	Message(ctx context.Context, room string, id chat.ID) ([]byte, error)
	// Change edits or deletes a message, or refuses to with the errors
	// of chat.Change (chat.ErrVersionMismatch and chat.ErrDeleted come
	// with the message as it is).
	Change(ctx context.Context, c chat.Change) (chat.Changed, error)
}

// StreamEngine runs event streams once their request is checked
// (broker/stream.Engine).
type StreamEngine interface {
	Open(ctx context.Context, spec stream.Spec) (*stream.Stream, error)
}

// Options are a Handler's dependencies and limits.
type Options struct {
	Store            MessageStore
	Streams          StreamEngine                // serves every stream once it is admitted
	Frames           sse.Frames                  // the wire format of streams, shared with the hub and Streams
	Ready            func(context.Context) error // nil when the service can serve
	Spec             []byte                      // openapi.yaml, served as is
	MaxMessageBytes  int
	MaxMetadataBytes int           // largest metadata of a message, as compact JSON; 0: DefaultMaxMetadataBytes
	EditWindow       time.Duration // how long authors may edit and delete their messages; 0: for ever
	Logger           *slog.Logger
	Metrics          *metrics.Metrics // nil: metrics are kept but only served if given
	Security         Security         // authentication, limits, CORS; zero: open mode
	Presence         PresenceTracker  // who watches each room; nil: streams are not counted
	Events           EventPublisher   // typing events
	TypingInterval   time.Duration    // shortest time between typing events of a user in a room; 0: DefaultTypingInterval
	StreamMaxRooms   int              // rooms one multi-room stream may watch; 0: DefaultStreamMaxRooms
	Cursors          cursor.Codec     // composite cursors of multi-room streams; every instance alike
	Reads            ReadStore        // read markers (PUT /rooms/{room}/read, GET /me/rooms)
	Bans             BanStore         // bans and revocations
	Rooms            RoomStore        // rooms' settings
	Control          ControlState     // the bans and revocations in force; nil: none apply
	RevocationTTL    time.Duration    // how long a revocation without expires_at is kept; 0: DefaultRevocationTTL
	Webhooks         DeadLetters      // webhook dead letters; nil: none

	// PublishHook screens users' posts before they are stored; nil: off.
	// PublishHookAcceptOnError stores a post the hook could not decide
	// (PUBLISH_HOOK_ON_ERROR=accept) instead of answering 503.
	PublishHook              PublishHook
	PublishHookAcceptOnError bool
}

// DefaultMaxMetadataBytes is the largest metadata of a message when
// Options.MaxMetadataBytes is 0 (MAX_METADATA_BYTES's default).
const DefaultMaxMetadataBytes = 2048

// Handler serves roomcast's HTTP API.
type Handler struct {
	Options
	log     *slog.Logger
	streams *streamCounter
	open    *openStreams
}

// New returns a Handler; call Register to route requests to it.
func New(opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxMetadataBytes <= 0 {
		opts.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	return &Handler{Options: opts, log: opts.Logger, streams: &streamCounter{perClient: make(map[string]int)},
		open: newOpenStreams()}
}

// Register installs the routes, in the order openapi.yaml lists them, the
// error handler, and request logging on e.
func (h *Handler) Register(e *echo.Echo) {
	e.HTTPErrorHandler = h.handleError
	e.Use(h.logRequests, h.Metrics.Middleware)
	h.useSecurity(e)
	g := h.guards()
	e.POST("/rooms/:room/messages", chain(h.postMessage, g.post...))
	e.GET("/rooms/:room/messages", chain(h.listMessages, g.read...))
	e.GET("/rooms/:room/messages/:id", chain(h.getMessage, g.read...))
	e.PATCH("/rooms/:room/messages/:id", chain(h.editMessage, g.edit...))
	e.DELETE("/rooms/:room/messages/:id", chain(h.deleteMessage, g.remove...))
	e.GET("/rooms/:room/stream", chain(h.streamRoom, g.stream...))
	e.GET("/rooms/:room/presence", chain(h.getPresence, g.read...))
	e.POST("/rooms/:room/typing", chain(h.postTyping, g.typing...))
	e.GET("/stream", chain(h.streamRooms, g.streams...))
	e.PUT("/rooms/:room/read", chain(h.putRead, g.mark...))
	e.GET("/me/rooms", chain(h.getMyRooms, g.me...))
	e.GET("/rooms", chain(h.listRooms, g.me...))
	e.GET("/rooms/:room", chain(h.getRoom, g.read...))
	e.PUT("/rooms/:room", chain(h.putRoom, g.moderateBody...))
	e.GET("/rooms/:room/bans", chain(h.listBans, g.moderate...))
	e.PUT("/rooms/:room/bans/:user", chain(h.putBan, g.moderateBody...))
	e.DELETE("/rooms/:room/bans/:user", chain(h.deleteBan, g.moderate...))
	e.POST("/admin/tokens/revoke", chain(h.revokeTokens, g.admin...))
	e.POST("/messages", chain(h.postMessages, g.batch...))
	e.GET("/admin/webhooks/dead", chain(h.listDeadWebhooks, g.adminRead...))
	e.POST("/admin/webhooks/dead/:id/retry", chain(h.retryDeadWebhook, g.adminRead...))
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.GET("/openapi.yaml", h.openapi)
	e.GET("/metrics", echo.WrapHandler(h.Metrics.Handler()))
	e.GET("/", h.page)
	e.GET("/assets/:file", h.asset)
}

// chain wraps next in route middleware mw, outermost first, once: given
// to the route instead, Echo would build the chain anew on every request.
func chain(next echo.HandlerFunc, mw ...echo.MiddlewareFunc) echo.HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		next = mw[i](next)
	}
	return next
}

// logRequests logs one line per request, with the request id it echoes in
// X-Request-Id (the client's, if it sent a sane one). It logs the path
// without the query, which may carry credentials.
func (h *Handler) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		id := requestID(r.Header.Get(echo.HeaderXRequestID))
		c.Response().Header()[echo.HeaderXRequestID] = []string{id} // the name is canonical
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		// Asked first, so that a level above info costs no attributes.
		if h.log.Enabled(r.Context(), slog.LevelInfo) {
			h.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", c.Response().Status),
				slog.Int64("bytes", c.Response().Size),
				slog.Duration("duration", time.Since(start).Round(time.Microsecond)),
			)
		}
		return nil
	}
}

// healthz answers 200 while the process runs.
// GET /healthz
func (h *Handler) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 while Redis answers and live delivery works, 503
// otherwise.
// GET /readyz
func (h *Handler) readyz(c echo.Context) error {
	if h.Ready != nil {
		if err := h.Ready(c.Request().Context()); err != nil {
			h.log.Warn("not ready", "err", err)
			return &Problem{Type: typeUnavailable, Title: "Not ready", Status: http.StatusServiceUnavailable,
				Detail: "the message store or live delivery is not working", retryAfter: 1}
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// openapi serves the API description.
// GET /openapi.yaml
func (h *Handler) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", h.Spec)
}

// requestID returns the client's request id if it is 1 to 64 characters of
// [A-Za-z0-9._-], else a new random one.
func requestID(given string) string {
	if len(given) >= 1 && len(given) <= 64 && chat.ValidRoom(given) {
		return given
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	var id [16]byte
	hex.Encode(id[:], b[:])
	return string(id[:])
}

// queryParam is the first value of the query parameter name, and whether
// the request gives the parameter at all. A parameter given with an empty
// value ("?limit=") is given: its schema allows no empty value, so the
// caller refuses it with 400 rather than take it for absent.
func queryParam(c echo.Context, name string) (value string, given bool) {
	values, given := c.QueryParams()[name]
	if len(values) == 0 {
		return "", given
	}
	return values[0], given
}
