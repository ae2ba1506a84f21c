package api

import (
	"strings"
	"unicode/utf8"

	"roomcast/broker/chat"
)

// decodePlainPost decodes the body almost every post has, a flat object of
// a valid "text" and an optional valid "user", in one pass and without
// encoding/json, which decodePost runs three times over a body. It
// reports false for anything else (other fields, duplicates, \u escapes,
// values that are not strings, invalid values): decodePost then decides,
// with its errors. Whatever it accepts, decodePost decodes to the same
// Post (FuzzPlainPost).
func decodePlainPost(body []byte, maxText int) (chat.Post, bool) {
	var (
		text, user       string
		hasText, hasUser bool
	)
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return chat.Post{}, false
	}
	i = skipSpace(body, i+1)
	for first := true; ; first = false {
		if i < len(body) && body[i] == '}' && first {
			break
		}
		name, next, ok := plainString(body, i)
		if !ok {
			return chat.Post{}, false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return chat.Post{}, false
		}
		value, next, ok := plainString(body, skipSpace(body, i+1))
		if !ok {
			return chat.Post{}, false
		}
		switch {
		case name == "text" && !hasText:
			text, hasText = value, true
		case name == "user" && !hasUser:
			user, hasUser = value, true
		default:
			return chat.Post{}, false
		}
		i = skipSpace(body, next)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		if i < len(body) && body[i] == '}' {
			break
		}
		return chat.Post{}, false
	}
	if skipSpace(body, i+1) != len(body) {
		return chat.Post{}, false
	}
	if !hasText || len(text) > maxText || strings.TrimSpace(text) == "" || hasUser && !validUser(user) {
		return chat.Post{}, false
	}
	return chat.Post{User: user, Text: text}, true
}

// skipSpace is the index of the first byte at or after i that is not JSON
// white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString decodes the JSON string at b[i:] and returns it with the
// index after its closing quote. It reports false for a \u escape (which
// may be half of a surrogate pair: decodePost's concern), a control
// character, invalid UTF-8 or no string at all.
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	var out []byte // nil until the first escape
	for j := start; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			if out == nil {
				s := b[start:j]
				return string(s), j + 1, utf8.Valid(s)
			}
			out = append(out, b[start:j]...)
			return string(out), j + 1, utf8.Valid(out)
		case c < ' ':
			return "", 0, false
		case c == '\\':
			if j+1 >= len(b) {
				return "", 0, false
			}
			var r byte
			switch b[j+1] {
			case '"', '\\', '/':
				r = b[j+1]
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			default:
				return "", 0, false
			}
			out = append(append(out, b[start:j]...), r)
			j++
			start = j + 1
		}
	}
	return "", 0, false
}
