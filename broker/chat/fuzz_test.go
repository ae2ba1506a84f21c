package chat

import (
	"errors"
	"testing"
)

// FuzzParseID runs on its seeds with every go test; .ci/test also fuzzes it.

func FuzzParseID(f *testing.F) {
	for _, seed := range []string{
		"mb1x2y3z-7", "a-1", "a-0", "a-01", "0a-1", "A-1", "a--1", "-1", "a-", "a", "", "zzzzzzzzzzzz-1", "zzzzzzzzzzzzz-1",
		"a-9007199254740991", "a-9007199254740992", "a-18446744073709551616", "a-+1", "a- 1", "a-1\x00", "a-1\n", "ä-1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("ParseID(%q) error %v, want ErrInvalidID", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %q; ids must round-trip exactly", s, id)
		}
		if id.Seq < 1 || id.Seq > maxSeq || id.Epoch == "" {
			t.Fatalf("ParseID(%q) = %+v out of range", s, id)
		}
		if got, err := IDOf([]byte(`{"id":"` + s + `","seq":1}`)); err != nil || got != id {
			t.Fatalf("IDOf of a message with id %q = %+v, %v", s, got, err)
		}
	})
}
