package chat

import (
	"errors"
	"testing"
)

func TestParseID(t *testing.T) {
	t.Parallel()
	valid := []struct {
		text string
		want ID
	}{
		{text: "a-1", want: ID{Epoch: "a", Seq: 1}},
		{text: "lq3k9x0a-42", want: ID{Epoch: "lq3k9x0a", Seq: 42}},
		{text: "zzzzzzzzzzzz-9007199254740991", want: ID{Epoch: "zzzzzzzzzzzz", Seq: maxSeq}},
	}
	for _, tt := range valid {
		got, err := ParseID(tt.text)
		if err != nil || got != tt.want {
			t.Fatalf("ParseID(%q) = %+v, %v; want %+v", tt.text, got, err, tt.want)
		}
		if s := got.String(); s != tt.text {
			t.Fatalf("ParseID(%q).String() = %q", tt.text, s)
		}
	}
	for _, text := range []string{
		"", "-", "a", "a-", "-1", "a-0", "a-01", "0a-1", "A-1", "a_b-1", "a-1-2", "a--1", "a-+1", "a- 1",
		"a-1.0", "a-1e3", "a-9007199254740992", "a-99999999999999999", "zzzzzzzzzzzzz-1", "a-1\n", "a b-1", "é-1",
	} {
		if got, err := ParseID(text); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("ParseID(%q) = %+v, %v; want ErrInvalidID", text, got, err)
		}
	}
}

func TestIDOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, pos          ID
		follows, covered bool
	}{
		{id: ID{"e", 1}, pos: ID{}, follows: true},
		{id: ID{"e", 2}, pos: ID{}},
		{id: ID{"e", 6}, pos: ID{"e", 5}, follows: true},
		{id: ID{"e", 7}, pos: ID{"e", 5}},
		{id: ID{"e", 5}, pos: ID{"e", 5}, covered: true},
		{id: ID{"e", 4}, pos: ID{"e", 5}, covered: true},
		{id: ID{"f", 1}, pos: ID{"e", 5}},
		{id: ID{"f", 6}, pos: ID{"e", 5}},
		{id: ID{"f", 5}, pos: ID{"e", 5}},
	}
	for _, tt := range tests {
		if got := tt.id.Follows(tt.pos); got != tt.follows {
			t.Fatalf("%v.Follows(%v) = %v, want %v", tt.id, tt.pos, got, tt.follows)
		}
		if got := tt.id.Covered(tt.pos); got != tt.covered {
			t.Fatalf("%v.Covered(%v) = %v, want %v", tt.id, tt.pos, got, tt.covered)
		}
	}
}

func TestIDOf(t *testing.T) {
	t.Parallel()
	if got, err := IDOf([]byte(`{"id":"k1-7","seq":7}`)); err != nil || got != (ID{"k1", 7}) {
		t.Fatalf("IDOf = %+v, %v; want k1-7", got, err)
	}
	for _, data := range []string{
		``, `{}`, `{"id":`, `{"id":"k1-7`, `{"seq":7,"id":"k1-7"}`, `{"id":"bad"}`, ` {"id":"k1-7"}`,
		`{"id":"` + string(make([]byte, 60)) + `"}`,
	} {
		if got, err := IDOf([]byte(data)); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("IDOf(%q) = %+v, %v; want ErrInvalidID", data, got, err)
		}
	}
}
