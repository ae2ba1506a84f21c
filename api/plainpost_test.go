package api

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzPlainPost checks that the one-pass decoder of plain posts agrees with
// decodePost on every body it accepts. It runs on its seeds with every go
// test; .ci/test also fuzzes it.
func FuzzPlainPost(f *testing.F) {
	for _, seed := range []string{
		`{"text":"hi"}`, `{"text":"hi","user":"bob"}`, ` { "user" : "bob" , "text" : "hi" } `, "{\"text\":\"a\\n\\\"b\\\\/\\/\\t\\r\\b\\f\"}\n",
		`{"text":""}`, `{"text":"  "}`, `{"text":"\t"}`, `{"user":"bob"}`, `{}`, `{"text":"a","text":"b"}`, `{"text":"a","user":""}`,
		`{"text":"a","user":"a\tb"}`, `{"text":"a",}`, `{"text":"a"}x`, `{"text":"a"}{}`, `{"text":"\u00e9"}`, `{"text":"é"}`,
		"{\"text\":\"\xff\"}", "{\"text\":\"a\x01\"}", `{"text":"\x"}`, `{"text":"a"`, `{"text":"a\`, `{"text":1}`, `{"text":null}`,
		`{"TEXT":"a"}`, `{"text":"a","meta":"b"}`, `{"text":"a" "user":"b"}`, `{"text":"<&>\u2028"}`, "{\"text\":\"\u2028\"}",
		`{"text":"` + strings.Repeat("x", fuzzMaxText) + `"}`, `{"text":"` + strings.Repeat("x", fuzzMaxText+1) + `"}`,
		`{"text":"x","user":"` + strings.Repeat("u", 64) + `"}`, `{"text":"x","user":"` + strings.Repeat("u", 65) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		plain, ok := decodePlainPost(body, fuzzMaxText)
		if !ok {
			return
		}
		post, err := decodePost(body, fuzzLimits)
		if err != nil || !reflect.DeepEqual(plain, post) {
			t.Fatalf("decodePlainPost(%q) = %+v, but decodePost = %+v, %v", body, plain, post, err)
		}
	})
}

// TestPlainPostTakesPlainBodies checks that the bodies clients send take
// the one-pass decoder, so that FuzzPlainPost has something to compare.
func TestPlainPostTakesPlainBodies(t *testing.T) {
	for _, body := range []string{
		`{"text":"hello","user":"ann"}`, `{"user":"ann","text":"hello"}`, `{"text":"hello"}`,
		"{\"text\":\"two\\nlines, a \\\"quote\\\" and a tab\\t\"}\n", `{"text":"héllo 😀 <b>&amp;</b>"}`,
	} {
		if _, ok := decodePlainPost([]byte(body), fuzzMaxText); !ok {
			t.Errorf("decodePlainPost(%s) refused a plain post", body)
		}
	}
}
