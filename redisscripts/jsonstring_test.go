package redisscripts

import (
	"encoding/json"
	"testing"
)

// FuzzJSONString checks appendJSONString against encoding/json. It runs on
// its seeds with every go test; .ci/test also fuzzes it.
func FuzzJSONString(f *testing.F) {
	for _, seed := range []string{"", "hello", `"quoted" \back\ /slash/`, "<b>&amp;</b>", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
		"\u2028\u2029\u2027\u202a", "é 😀 \u00a0", "\xff", "a\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\ufffd"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got[1:], want)
		}
	})
}
