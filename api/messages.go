package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"roomcast/broker/chat"
)

const (
	defaultLimit  = 50
	maxLimit      = 200
	maxUserRunes  = 64
	maxIdemKeyLen = 128
)

// postMessage stores a message and publishes it to the room's streams.
// POST /rooms/{room}/messages
func (h *Handler) postMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	body, err := readBody(c, h.maxBodyBytes())
	if err != nil {
		return err
	}
	post, plain := decodePlainPost(body, h.MaxMessageBytes)
	if !plain {
		if post, err = decodePost(body, h.postLimits()); err != nil {
			return err
		}
	}
	if post.User, err = postingUser(c, post.User); err != nil {
		return err
	}
	if err := h.refuseBanned(c, room, post.User); err != nil {
		return err
	}
	post.Room = room
	post.Moderator = h.mayModerate(c, room)
	if post.IdempotencyKey, err = idempotencyKey(c.Request()); err != nil {
		return err
	}
	if _, err := h.screen(c, &post, chat.ID{}); err != nil {
		return err
	}
	posted, err := h.Store.Post(c.Request().Context(), post)
	if errors.Is(err, chat.ErrReadOnly) {
		// The challenge of every 403: a token that moderates the room
		// may post.
		c.Response().Header().Set(echo.HeaderWWWAuthenticate,
			realm+`, error="insufficient_scope", error_description="the room is read-only"`)
	}
	if err != nil {
		return err
	}
	h.Metrics.Posted(posted.Replayed)
	if posted.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	// The stored bytes plus a newline, like every JSON answer, written
	// apart: posted.JSON may be shared, and a copy would cost more.
	resp := c.Response()
	resp.Header()[echo.HeaderContentType] = jsonContentType
	resp.WriteHeader(http.StatusCreated)
	if _, err := resp.Write(posted.JSON); err != nil {
		return err
	}
	_, err = resp.Write(newline)
	return err
}

// jsonContentType and newline are shared by every answer to a post.
var (
	jsonContentType = []string{echo.MIMEApplicationJSON}
	newline         = []byte{'\n'}
)

// maxBodyBytes is the largest body that can hold a message of
// MaxMessageBytes, as JSON may escape every byte of the text as \u00XX,
// and metadata of MaxMetadataBytes with as much white space again.
func (h *Handler) maxBodyBytes() int64 {
	return int64(h.MaxMessageBytes)*6 + int64(h.MaxMetadataBytes)*2 + 1024
}

// postLimits are the limits decodePost checks.
type postLimits struct {
	maxText     int // bytes of text
	maxMetadata int // bytes of metadata as compact JSON
}

func (h *Handler) postLimits() postLimits {
	return postLimits{maxText: h.MaxMessageBytes, maxMetadata: h.MaxMetadataBytes}
}

func roomParam(c echo.Context) (string, error) {
	room := pathRoom(c)
	if !chat.ValidRoom(room) {
		return "", errInvalidRoom
	}
	return room, nil
}

// pathRoom is the :room of the request's path, percent-decoded once, so
// that /rooms/%61bc is the room abc. Echo routes on the escaped path, and
// leaves its parameters escaped, when the request's path has escapes that
// plain encoding would not make (url.URL.RawPath); otherwise the parameter
// is decoded already. An escaped "/" decodes into a "/", which no room id
// holds. It is "" when the parameter does not decode.
func pathRoom(c echo.Context) string {
	room := c.Param("room")
	if c.Request().URL.RawPath == "" {
		return room
	}
	decoded, err := url.PathUnescape(room)
	if err != nil {
		return ""
	}
	return decoded
}

func requireJSON(r *http.Request) error {
	contentType := r.Header.Get(echo.HeaderContentType)
	if contentType == echo.MIMEApplicationJSON {
		return nil // as almost every client sends it, without parsing
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != echo.MIMEApplicationJSON {
		return problemForStatus(http.StatusUnsupportedMediaType)
	}
	return nil
}

// readBody reads at most limit bytes, answering 413 beyond that without
// reading the rest; a declared Content-Length over the limit is refused
// before reading anything.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, problemForStatus(http.StatusRequestEntityTooLarge)
	}
	// A body of a declared length is read to that length and no further
	// (net/http and HTTP/2 enforce it), within the limit checked above.
	// Else the cap: on the net/http writer itself, which tells the server
	// to close the connection rather than drain the rest of an oversized
	// body.
	reader := r.Body
	if r.ContentLength < 0 {
		reader = http.MaxBytesReader(c.Response().Writer, r.Body, limit)
	}
	body, err := io.ReadAll(reader)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, problemForStatus(http.StatusRequestEntityTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return body, nil
}

// decodePost validates a POST body: one JSON object with a "text" of at
// most lim.maxText bytes that is not only white space (Unicode
// White_Space), an optional "user" ("" when absent), an optional
// "metadata" object of at most lim.maxMetadata bytes once compact and an
// optional "reply_to" message id; nothing else.
func decodePost(body []byte, lim postLimits) (chat.Post, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid message", detail) }
	if !utf8.Valid(body) {
		return chat.Post{}, invalid("the body is not valid UTF-8")
	}
	// A map, not a struct: encoding/json matches struct fields ignoring
	// case, which would take "TEXT" for "text".
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return chat.Post{}, invalid(jsonErrorDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return chat.Post{}, invalid("the body must hold exactly one JSON object")
	}
	return postFields(fields, lim)
}

// postFields checks the members of a post body, decoded but not yet
// checked.
func postFields(fields map[string]json.RawMessage, lim postLimits) (chat.Post, error) {
	invalid := func(detail string) error { return badRequest(typeInvalidBody, "Invalid message", detail) }
	var in struct{ Text, User *string }
	var post chat.Post
	for name, value := range fields {
		var dst **string
		switch name {
		case "text":
			dst = &in.Text
		case "user":
			dst = &in.User
		case "metadata":
			metadata, err := decodeMetadata(value, lim.maxMetadata)
			if err != nil {
				return chat.Post{}, err
			}
			post.Metadata = metadata
			continue
		case "reply_to":
			var text string
			if err := json.Unmarshal(value, &text); err != nil {
				return chat.Post{}, invalid(`"reply_to" must be a message id`)
			}
			id, err := chat.ParseID(text)
			if err != nil {
				return chat.Post{}, invalid(`"reply_to" must be a message id`)
			}
			post.ReplyTo = id
			continue
		default:
			return chat.Post{}, invalid(fmt.Sprintf("unknown field %s", shorten(strconv.QuoteToASCII(name))))
		}
		if err := json.Unmarshal(value, dst); err != nil || *dst == nil {
			return chat.Post{}, invalid(fmt.Sprintf("%q must be a string", name))
		}
		if loneSurrogate(value) {
			return chat.Post{}, invalid(fmt.Sprintf("%q escapes half of a UTF-16 surrogate pair, which is not a character", name))
		}
	}
	switch {
	case in.Text == nil:
		return chat.Post{}, invalid(`"text" is required`)
	case *in.Text == "":
		return chat.Post{}, invalid(`"text" must not be empty`)
	case strings.TrimSpace(*in.Text) == "":
		// It would show as an empty message; the page refuses it too.
		return chat.Post{}, invalid(`"text" must hold more than white space`)
	case len(*in.Text) > lim.maxText:
		return chat.Post{}, invalid(fmt.Sprintf(`"text" is longer than %d bytes`, lim.maxText))
	}
	user := "" // postingUser chooses the user when the body names none
	if in.User != nil {
		user = *in.User
		if !validUser(user) {
			return chat.Post{}, invalid(`"user" must be 1 to 64 printable characters`)
		}
	}
	post.User, post.Text = user, *in.Text
	return post, nil
}

// decodeMetadata checks a "metadata" member, already valid JSON: an object
// of at most max bytes once compact, which is the form stored. Its values
// are stored as sent, escapes and all: the server never decodes them.
func decodeMetadata(value json.RawMessage, max int) (string, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, value); err != nil || compact.Len() == 0 || compact.Bytes()[0] != '{' {
		return "", badRequest(typeInvalidBody, "Invalid message", `"metadata" must be a JSON object`)
	}
	if compact.Len() > max {
		return "", badRequest(typeInvalidBody, "Invalid message", fmt.Sprintf(`"metadata" is longer than %d bytes`, max))
	}
	return compact.String(), nil
}

// loneSurrogate reports whether a JSON string literal, already checked to
// be valid JSON, escapes a UTF-16 surrogate that is not half of a pair
// ("\ud800"). encoding/json would turn it into U+FFFD silently, changing
// what was posted.
func loneSurrogate(literal []byte) bool {
	for i := 0; i < len(literal); i++ {
		if literal[i] != '\\' {
			continue
		}
		i++ // the escaped character; a "\\" is skipped whole
		r, ok := escapedUnit(literal, i)
		if !ok {
			continue
		}
		i += 4
		switch {
		case utf16.IsSurrogate(r) && r >= 0xdc00:
			return true // a low surrogate with no high one before it
		case utf16.IsSurrogate(r):
			low, ok := escapedUnit(literal, i+2)
			if i+1 >= len(literal) || literal[i+1] != '\\' || !ok || low < 0xdc00 || !utf16.IsSurrogate(low) {
				return true
			}
			i += 6
		}
	}
	return false
}

// escapedUnit is the UTF-16 code unit of the escape "uXXXX" at literal[i:].
func escapedUnit(literal []byte, i int) (rune, bool) {
	if i+5 > len(literal) || literal[i] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(literal[i+1:i+5]), 16, 16)
	return rune(n), err == nil
}

// jsonErrorDetail describes a decoding error without echoing input back.
func jsonErrorDetail(err error) string {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	}
	return "the body must be a JSON object"
}

// shorten cuts a quoted ASCII field name that is echoed back in an error.
func shorten(name string) string {
	if len(name) > 70 {
		return name[:70] + `…"`
	}
	return name
}

func validUser(user string) bool {
	if n := utf8.RuneCountInString(user); n < 1 || n > maxUserRunes {
		return false
	}
	for _, r := range user {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func idempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values("Idempotency-Key")
	if len(values) == 0 {
		return "", nil
	}
	key := values[0]
	if len(values) != 1 || !validIdempotencyKey(key) {
		return "", badRequest(typeInvalidParameter, "Invalid Idempotency-Key",
			"Idempotency-Key must be one value of 1 to 128 printable ASCII characters without spaces")
	}
	return key, nil
}

// validIdempotencyKey reports whether key is 1 to 128 printable ASCII
// characters without spaces.
func validIdempotencyKey(key string) bool {
	valid := len(key) >= 1 && len(key) <= maxIdemKeyLen
	for i := 0; valid && i < len(key); i++ {
		valid = key[i] > ' ' && key[i] < 0x7f
	}
	return valid
}

// listMessages returns a page of a room's history.
// GET /rooms/{room}/messages
func (h *Handler) listMessages(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	q, err := historyQuery(c)
	if err != nil {
		return err
	}
	page, err := h.Store.History(c.Request().Context(), room, q)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, encodePage(page))
}

func historyQuery(c echo.Context) (chat.Query, error) {
	q := chat.Query{Direction: chat.Latest, Limit: defaultLimit}
	if text, given := queryParam(c, "limit"); given {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > maxLimit {
			return q, badRequest(typeInvalidParameter, "Invalid limit", "limit must be an integer from 1 to 200")
		}
		q.Limit = n
	}
	before, hasBefore := queryParam(c, "before")
	after, hasAfter := queryParam(c, "after")
	if hasBefore && hasAfter {
		return q, badRequest(typeInvalidCursor, "Invalid cursor", "give before or after, not both")
	}
	for _, cursor := range []struct {
		text      string
		given     bool
		direction chat.Direction
	}{{before, hasBefore, chat.Before}, {after, hasAfter, chat.After}} {
		if !cursor.given {
			continue
		}
		id, err := chat.ParseID(cursor.text)
		if err != nil {
			return q, errInvalidCursor
		}
		q.Direction, q.Cursor = cursor.direction, id
	}
	return q, nil
}

var errInvalidCursor = badRequest(typeInvalidCursor, "Invalid cursor",
	"a cursor is the id of a message, as returned by this API")

// encodePage writes a history page, ended by a newline like every JSON
// answer; the messages and changes are copied byte for byte as stored.
func encodePage(page chat.Page) []byte {
	var b bytes.Buffer
	b.WriteString(`{"messages":[`)
	changes := 0
	for _, m := range page.Messages {
		if chat.IsChange(m) {
			changes++
			continue
		}
		if b.Len() > len(`{"messages":[`) {
			b.WriteByte(',')
		}
		b.Write(m)
	}
	b.WriteByte(']')
	if changes > 0 {
		b.WriteString(`,"changes":[`)
		first := true
		for _, m := range page.Messages {
			if !chat.IsChange(m) {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.Write(m)
		}
		b.WriteByte(']')
	}
	b.WriteString(`,"has_more":`)
	b.WriteString(strconv.FormatBool(page.HasMore))
	if page.Position.Epoch != "" {
		b.WriteString(`,"position":"`)
		b.WriteString(page.Position.String())
		b.WriteByte('"')
	}
	if page.Reset != nil {
		b.WriteString(`,"reset":`)
		b.Write(encodeReset(page.Reset))
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func encodeReset(r *chat.Reset) []byte {
	b, _ := json.Marshal(r)
	return b
}
