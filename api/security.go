package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"roomcast/api/auth"
)

// Security configures who may use the API and how much. The zero value is
// open mode without limits and without cross-origin access.
type Security struct {
	// Tokens verifies bearer tokens. When nil the API is open: anyone may
	// post as anyone into any room (development only).
	Tokens TokenVerifier
	// APIKeys are the server API keys: a request with one in X-API-Key
	// holds every permission on every room and may act as any user. They
	// work with or without Tokens.
	APIKeys auth.APIKeys
	// JWTCookie names a cookie that may carry the token of a stream,
	// since EventSource cannot send headers; "" for none.
	JWTCookie string
	// Posts limits how often each client may post; nil for no limit.
	Posts PostLimiter
	// MaxStreamsPerClient bounds the open streams of one user (one client
	// IP in open mode); more are answered 429. 0 for no limit.
	MaxStreamsPerClient int
	// MaxStreams bounds the open streams of this process; more get a retry
	// advice and end at once. 0 for no limit.
	MaxStreams int
	// TrustedProxies are the peers whose X-Forwarded-For header is believed
	// when finding a client's IP address. Empty: the peer is the client.
	TrustedProxies []netip.Prefix
	// CORSOrigins are the exact origins ("https://chat.example") whose
	// pages may call the API, with credentials.
	CORSOrigins []string
	// BodyReadTimeout bounds reading a request body, against clients that
	// send it slowly to hold connections open; 0 for no bound. Streams are
	// GET requests without a body and are not affected.
	BodyReadTimeout time.Duration
}

// securityHeaders are sent on every response. The page's handler sets its
// own Content-Security-Policy over this one. The names are canonical and
// the values are shared by every response, so that no request builds
// them; a value has no spare capacity, so an Add to it copies it, and
// handlers replace values (Set), never write into them.
var securityHeaders = [...]struct {
	name  string
	value []string
}{
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
}

// corsAllowHeaders are the request headers a cross-origin page may send.
var corsAllowHeaders = []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", "Last-Event-ID"}

// corsExposeHeaders are the response headers a cross-origin page may read.
var corsExposeHeaders = []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
	"Idempotent-Replayed", echo.HeaderWWWAuthenticate, echo.HeaderXRequestID}

// useSecurity installs what applies to every request: how the client's IP
// is found, the security headers, and CORS.
func (h *Handler) useSecurity(e *echo.Echo) {
	e.IPExtractor = h.warnUntrustedForwarding(clientIPExtractor(h.Security.TrustedProxies))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			header := c.Response().Header()
			for _, h := range securityHeaders {
				header[h.name] = h.value
			}
			return next(c)
		}
	})
	if len(h.Security.CORSOrigins) > 0 {
		origins := slices.Clone(h.Security.CORSOrigins)
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			Skipper:         unknownPathOptions,
			AllowOriginFunc: func(origin string) (bool, error) { return slices.Contains(origins, origin), nil },
			// Not HEAD: no operation has it, it is always a 405.
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
			AllowHeaders:     corsAllowHeaders,
			ExposeHeaders:    corsExposeHeaders,
			AllowCredentials: true,
			MaxAge:           600,
		}))
	}
}

// unknownPathOptions reports whether c is an OPTIONS request for a path no
// route has, which the CORS middleware would answer 204 before the router's
// 404 (it answers every OPTIONS it sees); the router notes the methods of a
// path it knows (echo.ContextKeyHeaderAllow), and of no other.
func unknownPathOptions(c echo.Context) bool {
	return c.Request().Method == http.MethodOptions && c.Get(echo.ContextKeyHeaderAllow) == nil
}

// clientIPExtractor takes the client's IP from X-Forwarded-For only when
// the peer is a trusted proxy, and then the nearest address that is not
// itself a trusted proxy; otherwise the peer's address.
func clientIPExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{
			IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// warnUntrustedForwarding logs one warning, the first time a request
// carries X-Forwarded-For from a peer outside TrustedProxies: then every
// client behind that proxy shares one address, and so one post rate and
// one stream limit, which nothing else would reveal.
func (h *Handler) warnUntrustedForwarding(extract echo.IPExtractor) echo.IPExtractor {
	var once sync.Once
	trusted := h.Security.TrustedProxies
	return func(r *http.Request) string {
		if r.Header.Get(echo.HeaderXForwardedFor) != "" {
			peer := echo.ExtractIPDirect()(r)
			if a, err := netip.ParseAddr(peer); err == nil && !slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
				once.Do(func() {
					h.log.Warn("requests carry X-Forwarded-For from a peer not in TRUSTED_PROXIES: "+
						"per-client limits count every client behind that proxy as one; "+
						"set TRUSTED_PROXIES to the proxy's address", "peer", peer)
				})
			}
		}
		return extract(r)
	}
}

// ParseTrustedProxies parses a list of CIDR prefixes or single addresses.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want a CIDR prefix such as 10.0.0.0/8 or an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// bodyWithin bounds the time to read a request's body by BodyReadTimeout.
// The deadline is lifted once the body has been read, so that it cannot cut
// the work that follows or the connection's next request.
func (h *Handler) bodyWithin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if h.Security.BodyReadTimeout <= 0 {
			return next(c)
		}
		r := c.Request()
		rc := http.NewResponseController(c.Response())
		if err := rc.SetReadDeadline(time.Now().Add(h.Security.BodyReadTimeout)); err != nil {
			return next(c) // not a real connection (tests with a recorder)
		}
		// The server looks at the body's type when it answers to decide
		// whether to drain or drop what is left unread, so the wrapper is
		// removed before an error answer is written.
		body := r.Body
		r.Body = &deadlineBody{ReadCloser: body, rc: rc}
		defer func() { r.Body = body }()
		return next(c)
	}
}

// deadlineBody clears the connection's read deadline when the body ends.
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// errBodyTimeout is the answer to a body that did not arrive in time.
var errBodyTimeout = &Problem{Type: typeRequestTimeout, Title: "Request body too slow", Status: http.StatusRequestTimeout,
	Detail: "the request body did not arrive in time"}

// isReadTimeout reports whether err is a read that hit its deadline.
func isReadTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// roomGuards are the middleware of the room routes, outermost first.
type roomGuards struct {
	post, read, stream, typing, streams []echo.MiddlewareFunc
	mark, me                            []echo.MiddlewareFunc // read state
	moderate, moderateBody, admin       []echo.MiddlewareFunc // bans, revocations
	adminRead                           []echo.MiddlewareFunc // admin requests without a body
	batch                               []echo.MiddlewareFunc // POST /messages
	edit, remove                        []echo.MiddlewareFunc // changes of a message
}

// guards returns the middleware that authorise and limit the room routes.
// A bad room id is refused first, so that it touches nothing in Redis, not
// even a rate limit.
func (h *Handler) guards() roomGuards {
	return roomGuards{
		post: []echo.MiddlewareFunc{checkRoom, h.bodyWithin, h.authorize(writeAccess, false), h.limitPosts},
		read: []echo.MiddlewareFunc{checkRoom, h.authorize(readAccess, false)},
		// Edits and deletes publish to the room like posts, and use up
		// the same rate.
		edit:   []echo.MiddlewareFunc{checkRoom, h.bodyWithin, h.authorize(changeAccess, false), h.limitPosts},
		remove: []echo.MiddlewareFunc{checkRoom, h.authorize(changeAccess, false), h.limitPosts},
		// Streams check their token and limits with plain calls
		// (streamRoom, streamRooms, openStream), so that no middleware
		// frame stays behind a handed-over stream; one count of open
		// streams covers both kinds.
		stream:  nil,
		streams: nil,
		// Typing has a rate of its own (one event per TypingInterval), so
		// it does not use up the client's posts.
		typing: []echo.MiddlewareFunc{checkRoom, h.bodyWithin, h.authorize(writeAccess, false)},
		// A marker only moves forward, and each move publishes one event,
		// so marks cannot make more events than the room has messages:
		// they use no rate of their own.
		mark: []echo.MiddlewareFunc{checkRoom, h.bodyWithin, h.authorize(readAccess, false)},
		me:   []echo.MiddlewareFunc{h.authorize(anyRoom, false)},
		// Bans and revocations are rare and made by moderators or the
		// backend: no rate of their own.
		moderate:     []echo.MiddlewareFunc{checkRoom, h.authorize(moderateAccess, false)},
		moderateBody: []echo.MiddlewareFunc{checkRoom, h.bodyWithin, h.authorize(moderateAccess, false)},
		admin:        []echo.MiddlewareFunc{h.bodyWithin, h.authorize(serverOnly, false)},
		adminRead:    []echo.MiddlewareFunc{h.authorize(serverOnly, false)},
		// A batch is the backend's: server API keys are not held to
		// POST_RATE.
		batch: []echo.MiddlewareFunc{h.bodyWithin, h.authorize(serverOnly, false)},
	}
}

// checkRoom answers 400 to a request for an invalid room id.
func checkRoom(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := roomParam(c); err != nil {
			return err
		}
		return next(c)
	}
}
