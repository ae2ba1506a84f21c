package chat

import (
	"regexp"
	"strings"
	"testing"
)

// roomPattern is the definition of a room id that ValidRoom implements.
var roomPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func FuzzValidRoom(f *testing.F) {
	for _, seed := range []string{"lobby", "a", "", "A-Z_0.9", "a b", "a:b", "{a}", "a*", "ä", "a\n", "a\x00",
		strings.Repeat("r", 128), strings.Repeat("r", 129), "/", "%61", "a/b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, room string) {
		if got, want := ValidRoom(room), roomPattern.MatchString(room); got != want {
			t.Fatalf("ValidRoom(%q) = %v, want %v", room, got, want)
		}
	})
}
