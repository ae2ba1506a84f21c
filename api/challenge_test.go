package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"roomcast/api"
	"roomcast/api/auth"
)

// parseBearerChallenge parses a WWW-Authenticate value by the grammar of
// RFC 6750 section 3 (on RFC 7235's challenge): "Bearer", then
// comma-separated name="value" parameters. realm is an RFC 7235
// quoted-string; every other parameter (error, error_description) allows
// only %x20-21 / %x23-5B / %x5D-7E, with no escapes at all. It returns the
// parameters by name.
func parseBearerChallenge(challenge string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(challenge, "Bearer")
	if !ok {
		return nil, fmt.Errorf("the scheme is not Bearer")
	}
	params := map[string]string{}
	if rest == "" {
		return params, nil
	}
	if !strings.HasPrefix(rest, " ") {
		return nil, fmt.Errorf("no space after the scheme")
	}
	rest = strings.TrimLeft(rest, " ")
	for {
		eq := strings.IndexByte(rest, '=')
		if eq < 1 {
			return nil, fmt.Errorf("parameter without a name=value at %q", rest)
		}
		name := rest[:eq]
		for _, r := range name {
			if !isTokenChar(r) {
				return nil, fmt.Errorf("parameter name %q is not a token", name)
			}
		}
		if _, dup := params[name]; dup {
			return nil, fmt.Errorf("parameter %s given twice", name)
		}
		rest = rest[eq+1:]
		if !strings.HasPrefix(rest, `"`) {
			return nil, fmt.Errorf("%s is not a quoted string", name)
		}
		var value strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			c := rest[i]
			if name == "realm" && c == '\\' && i+1 < len(rest) { // quoted-pair
				i++
				c = rest[i]
			} else if !isNQSChar(c) {
				return nil, fmt.Errorf("%s holds %q, outside RFC 6750's %%x20-21 / %%x23-5B / %%x5D-7E", name, c)
			}
			value.WriteByte(c)
		}
		if i == len(rest) {
			return nil, fmt.Errorf("%s's quoted string does not end", name)
		}
		params[name] = value.String()
		rest = strings.TrimLeft(rest[i+1:], " \t")
		if rest == "" {
			break
		}
		if !strings.HasPrefix(rest, ",") {
			return nil, fmt.Errorf("after %s: %q, want a comma", name, rest)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	switch params["error"] {
	case "", "invalid_request", "invalid_token", "insufficient_scope":
	default:
		return nil, fmt.Errorf("unknown error code %q", params["error"])
	}
	if _, ok := params["error_description"]; ok && params["error"] == "" {
		return nil, fmt.Errorf("error_description without error")
	}
	return params, nil
}

// isNQSChar is RFC 6750's NQSCHAR: printable ASCII without '"' and '\'.
func isNQSChar(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' }

// isTokenChar is an RFC 7230 tchar.
func isTokenChar(r rune) bool {
	return r < 0x7f && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

func TestParseBearerChallenge(t *testing.T) {
	for _, tc := range []struct {
		challenge string
		valid     bool
	}{
		{challenge: `Bearer realm="roomcast"`, valid: true},
		{challenge: `Bearer`, valid: true},
		{challenge: `Bearer realm="roomcast", error="invalid_token", error_description="the token is invalid"`, valid: true},
		{challenge: `Bearer realm="roomcast", error="insufficient_scope", error_description="'user' differs"`, valid: true},
		{challenge: `Bearer realm="roomcast", error="insufficient_scope", error_description=""user" differs"`},
		{challenge: `Bearer realm="roomcast", error="insufficient_scope", error_description="a \"b\""`},
		{challenge: `Bearer realm="roomcast", error="insufficient_scope", error_description="café"`},
		{challenge: `Bearer realm="roomcast", error_description="x"`},
		{challenge: `Bearer realm="roomcast" error="invalid_token"`},
		{challenge: `Bearer realm="roomcast", error="bad"`},
		{challenge: `Basic realm="roomcast"`},
	} {
		_, err := parseBearerChallenge(tc.challenge)
		if (err == nil) != tc.valid {
			t.Errorf("parseBearerChallenge(%s) error %v, want valid %v", tc.challenge, err, tc.valid)
		}
	}
}

// TestChallengesFollowRFC6750 provokes every 401 and 403 the API answers
// and parses each WWW-Authenticate it gets by the RFC's grammar.
func TestChallengesFollowRFC6750(t *testing.T) {
	s := authServer(t, api.Security{Tokens: verifier(t, auth.Config{Secret: testSecret,
		DefaultRooms: auth.Rooms{Read: []string{"open-*"}, Write: []string{"open-*"}}})})
	readOnly := hs256(t, "ro", jwt.MapClaims{"rooms": map[string]any{"read": []string{"*"}}})
	writeOnly := hs256(t, "wo", jwt.MapClaims{"rooms": map[string]any{"write": []string{"*"}}})
	for _, tc := range []struct {
		name      string
		method    string
		path      string
		header    []string
		body      string // a post's body; {"text":"x"} if empty
		wantError string
	}{
		{name: "no token", method: http.MethodGet, path: "/rooms/open-1/messages"},
		{name: "invalid token", method: http.MethodPost, path: "/rooms/open-1/messages", header: bearer("a.b.c"), wantError: "invalid_token"},
		{name: "huge token", method: http.MethodGet, path: "/rooms/open-1/stream", header: bearer(strings.Repeat("A", 9000)), wantError: "invalid_token"},
		{name: "expired token", method: http.MethodGet, path: "/rooms/open-1/messages",
			header: bearer(hs256(t, "al", jwt.MapClaims{"exp": 1})), wantError: "invalid_token"},
		{name: "no write permission", method: http.MethodPost, path: "/rooms/open-1/messages", header: bearer(readOnly), wantError: "insufficient_scope"},
		{name: "no read permission", method: http.MethodGet, path: "/rooms/open-1/messages", header: bearer(writeOnly), wantError: "insufficient_scope"},
		{name: "no stream permission", method: http.MethodGet, path: "/rooms/open-1/stream", header: bearer(writeOnly), wantError: "insufficient_scope"},
		{name: "posting as another user", method: http.MethodPost, path: "/rooms/open-1/messages",
			header: bearer(hs256(t, "alice", nil)), body: `{"text":"x","user":"bob"}`, wantError: "insufficient_scope"},
		{name: "subject that is no user name", method: http.MethodPost, path: "/rooms/open-1/messages",
			header: bearer(hs256(t, "tab\tbed", nil)), wantError: "insufficient_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if tc.method == http.MethodPost && body == "" {
				body = `{"text":"x"}`
			}
			resp, answer := s.do(t, tc.method, tc.path, body, append([]string{"Content-Type", "application/json"}, tc.header...)...)
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status = %d, want 401 or 403; body %s", resp.StatusCode, answer)
			}
			challenges := resp.Header.Values("WWW-Authenticate")
			if len(challenges) != 1 {
				t.Fatalf("WWW-Authenticate = %q, want one challenge", challenges)
			}
			params, err := parseBearerChallenge(challenges[0])
			if err != nil {
				t.Fatalf("WWW-Authenticate %s: %v", challenges[0], err)
			}
			if params["realm"] != "roomcast" || params["error"] != tc.wantError {
				t.Fatalf("WWW-Authenticate %s: realm %q, error %q; want roomcast, %q",
					challenges[0], params["realm"], params["error"], tc.wantError)
			}
			if tc.wantError != "" && params["error_description"] == "" {
				t.Fatalf("WWW-Authenticate %s has no error_description", challenges[0])
			}
		})
	}
}
