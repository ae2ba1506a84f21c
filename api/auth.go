package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"roomcast/api/auth"
)

// TokenVerifier checks bearer tokens. The error of Verify wraps
// auth.ErrExpired or auth.ErrInvalid and never contains the token.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (auth.Claims, error)
}

var _ TokenVerifier = (*auth.Verifier)(nil)

// access is what a request does with its room.
type access int

const (
	readAccess access = iota
	writeAccess
	moderateAccess
	changeAccess // an edit or delete: write (the author's own) or moderate
	anyRoom      // the token only; the handler checks the rooms
	serverOnly   // a server API key only (in open mode without keys: anyone)
)

const (
	claimsKey      = "roomcast.claims" // echo.Context key of a request's auth.Claims
	maxTokenBytes  = 8 << 10
	realm          = `Bearer realm="roomcast"`
	apiKeyRealm    = `APIKey realm="roomcast"`
	apiKeyHeader   = "X-API-Key"
	maxAPIKeyBytes = 1 << 10
)

// authorize admits a request whose bearer token grants need on the :room
// of its path; without a TokenVerifier it admits every request. The token
// comes from the Authorization header, and for streams also from the
// access_token query parameter or the JWTCookie cookie. It answers 401
// for a missing, invalid or expired token and 403 for a token without the
// permission, and puts the claims in the context for the handler.
func (h *Handler) authorize(need access, stream bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := h.checkToken(c, need, stream); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// checkToken is authorize as a plain call, for the stream handler. A
// request with an X-API-Key header is decided by that key alone: a
// known key holds every permission, any other is a 401, whatever else the
// request carries.
func (h *Handler) checkToken(c echo.Context, need access, stream bool) error {
	if values := c.Request().Header.Values(apiKeyHeader); len(values) > 0 {
		return h.checkAPIKey(c, values)
	}
	if need == serverOnly {
		if h.Security.Tokens == nil && h.Security.APIKeys.Len() == 0 {
			return nil // open mode: development only, like every route then
		}
		return unauthorizedKey(c, "this request needs a server API key in X-API-Key")
	}
	if h.Security.Tokens == nil {
		return nil
	}
	token := bearerToken(c.Request())
	if token == "" && stream {
		token = streamToken(c.Request(), h.Security.JWTCookie)
	}
	if token == "" {
		return unauthorized(c, typeUnauthorized, "", "this request needs a bearer token")
	}
	if len(token) > maxTokenBytes {
		return unauthorized(c, typeUnauthorized, "invalid_token", "the token is invalid")
	}
	claims, err := h.Security.Tokens.Verify(c.Request().Context(), token)
	switch {
	case errors.Is(err, auth.ErrExpired):
		return unauthorized(c, typeTokenExpired, "invalid_token", "the token has expired")
	case err != nil:
		h.log.Debug("token rejected", "path", c.Request().URL.Path, "err", err)
		return unauthorized(c, typeUnauthorized, "invalid_token", "the token is invalid")
	}
	if h.Control != nil && h.Control.Revoked(claims.Subject, claims.JTI, claims.IssuedAt) {
		return unauthorized(c, typeTokenRevoked, "invalid_token", "the token has been revoked")
	}
	room := pathRoom(c)
	if need == writeAccess && !claims.Rooms.CanWrite(room) {
		return forbidden(c, "the token does not allow posting to this room")
	}
	if need == readAccess && !claims.Rooms.CanRead(room) {
		return forbidden(c, "the token does not allow reading this room")
	}
	if need == moderateAccess && !claims.Rooms.CanModerate(room) {
		return forbidden(c, "the token does not allow moderating this room")
	}
	if need == changeAccess && !claims.Rooms.CanWrite(room) && !claims.Rooms.CanModerate(room) {
		return forbidden(c, "the token does not allow changing messages in this room")
	}
	c.Set(claimsKey, claims)
	return nil
}

// checkAPIKey admits a request whose X-API-Key is one of the server's keys
// (one header value, compared in constant time) with auth.ServerClaims,
// and answers 401 otherwise, also when the server has no keys: a key that
// fails never falls back to the request's token or to open mode. The key
// is never logged; metrics count requests by the key's position.
func (h *Handler) checkAPIKey(c echo.Context, values []string) error {
	index := 0
	if len(values) == 1 && len(values[0]) <= maxAPIKeyBytes {
		index = h.Security.APIKeys.Match(values[0])
	}
	h.Metrics.APIKeyRequest(index)
	if index == 0 {
		return unauthorizedKey(c, "the API key is not one of this server's keys")
	}
	c.Set(claimsKey, auth.ServerClaims(index))
	return nil
}

// mayModerate reports whether the request may act on other users'
// messages in room: with a server API key always, with a token when its
// rooms claim grants moderate on room, in open mode never: a user there
// is whoever the request says, so moderation would be anyone's.
func (h *Handler) mayModerate(c echo.Context, room string) bool {
	claims, ok := c.Get(claimsKey).(auth.Claims)
	return ok && claims.Rooms.CanModerate(room)
}

// isServer reports whether the request was made with a server API key.
func isServer(c echo.Context) bool {
	claims, ok := c.Get(claimsKey).(auth.Claims)
	return ok && claims.Server()
}

// bearerToken is the token of an "Authorization: Bearer" header, or "".
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// streamToken is a token that EventSource can send: the access_token query
// parameter, else the cookie named cookie.
func streamToken(r *http.Request, cookie string) string {
	if token := r.URL.Query().Get("access_token"); token != "" {
		return token
	}
	if cookie == "" {
		return ""
	}
	if ck, err := r.Cookie(cookie); err == nil {
		return ck.Value
	}
	return ""
}

// unauthorized answers 401 with the RFC 6750 challenge; code is "" when
// the request had no token at all. An expired token has a type of its own,
// so that clients know to get a fresh one rather than sign in again.
func unauthorized(c echo.Context, typ, code, detail string) error {
	challenge := realm
	if code != "" {
		challenge += `, error="` + code + `", error_description="` + challengeText(detail) + `"`
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	return &Problem{Type: typ, Title: "Unauthorized", Status: http.StatusUnauthorized, Detail: detail}
}

// unauthorizedKey answers 401 to a request that needs a server API key and
// has none, or one that is not the server's.
func unauthorizedKey(c echo.Context, detail string) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, apiKeyRealm)
	return &Problem{Type: typeUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized, Detail: detail}
}

// forbidden answers 403 for a valid token that lacks a permission.
func forbidden(c echo.Context, detail string) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate,
		realm+`, error="insufficient_scope", error_description="`+challengeText(detail)+`"`)
	return &Problem{Type: typeForbidden, Title: "Forbidden", Status: http.StatusForbidden, Detail: detail}
}

// challengeText fits text into an RFC 6750 error_description, which allows
// only printable ASCII without '"' and '\' (and no escapes): double
// quotes become single ones, other characters are dropped.
func challengeText(text string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < ' ' || r > '~':
			return -1
		}
		return r
	}, text)
}

// serverUser is the user of a post with a server API key that names none.
const serverUser = "system"

// postingUser is the user a message is posted as. With a token it is the
// token's subject, and a body naming another user is refused with 403;
// in open mode it is the body's user, or "anonymous" when there is none;
// with a server API key the body's user, or "system".
func postingUser(c echo.Context, bodyUser string) (string, error) {
	claims, ok := c.Get(claimsKey).(auth.Claims)
	switch {
	case bodyUser != "" && (!ok || claims.Server()):
		return bodyUser, nil
	case !ok:
		return "anonymous", nil
	case claims.Server():
		return serverUser, nil
	}
	if bodyUser != "" && bodyUser != claims.Subject {
		return "", forbidden(c, `"user" differs from the token's subject; leave it out`)
	}
	if !validUser(claims.Subject) {
		return "", forbidden(c, "the token's subject is not a valid user name (1 to 64 printable characters)")
	}
	return claims.Subject, nil
}

// clientKey names the client that limits apply to: the token's subject,
// the server API key's position, or in open mode the client's IP address.
func clientKey(c echo.Context) string {
	if claims, ok := c.Get(claimsKey).(auth.Claims); ok {
		if claims.Server() {
			return "key:" + strconv.Itoa(claims.Key)
		}
		return "user:" + claims.Subject
	}
	return "ip:" + c.RealIP()
}

// streamExpiry is when a stream must end because its token stops being
// valid; zero in open mode. The engine then ends it with a comment that
// says why, so that the client reconnects with a new token.
func streamExpiry(c echo.Context) time.Time {
	if claims, ok := c.Get(claimsKey).(auth.Claims); ok {
		return claims.ValidUntil
	}
	return time.Time{}
}
