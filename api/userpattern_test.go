package api

import (
	"os"
	"regexp"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// TestUserPatternMatchesValidUsers checks the spec's pattern for user
// names against the server's own check: every name of one character that
// the server accepts matches it (so the contract check cannot refuse a
// valid answer), and the characters users most often smuggle in do not.
func TestUserPatternMatchesValidUsers(t *testing.T) {
	data, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Pattern    string `yaml:"pattern"`
				Properties map[string]struct {
					Pattern string `yaml:"pattern"`
				} `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	// JSON Schema patterns are ECMA-262; Go's regexp spells \uXXXX as \x{XXXX}.
	toGo := regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`)
	// UserName is the user of posts and batches; Message spells its own.
	for _, schema := range []string{"UserName", "Message"} {
		pattern := spec.Components.Schemas[schema].Pattern
		if schema == "Message" {
			pattern = spec.Components.Schemas[schema].Properties["user"].Pattern
		}
		if pattern == "" {
			t.Fatalf("%s.user has no pattern", schema)
		}
		re := regexp.MustCompile(toGo.ReplaceAllString(pattern, `\x{$1}`))
		for r := rune(0); r <= utf8.MaxRune; r++ {
			if utf8.ValidRune(r) && validUser(string(r)) && !re.MatchString(string(r)) {
				t.Fatalf("%s.user's pattern refuses %U, which the server accepts", schema, r)
			}
		}
		for _, bad := range []string{"a\nb", "a\tb", "\x7f", "a\u0085", "a\u00a0b", "a\u200bb", "a\u2028", "a\u202eb", "\ufeff", "\ue000"} {
			if validUser(bad) || re.MatchString(bad) {
				t.Fatalf("%s.user: %q passes the server's check or the pattern", schema, bad)
			}
		}
	}
}
