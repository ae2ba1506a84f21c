package redisscripts

import (
	"errors"
	"strings"
	"testing"
)

// The fuzz targets below run on their seeds with every go test; .ci/test
// also fuzzes each for a few seconds. Seeds beyond those added here are
// in testdata/fuzz.

// validRoomByHand is the room id rule spelt out without a regexp.
func validRoomByHand(room string) bool {
	if len(room) < 1 || len(room) > 128 {
		return false
	}
	for _, c := range []byte(room) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// hashTag is the part of key that Redis Cluster hashes: between the first
// "{" and the first "}" after it, when that is not empty.
func hashTag(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return key
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return key
	}
	return tag
}

func FuzzRoomKeys(f *testing.F) {
	for _, seed := range []string{
		"lobby", "support-42", "a.b_c", "", "a*b", "a?b", "[ab]", "a\\b", "{a}", "a}b", "a:b", "room\n", "room\x00",
		"ünï", "..", "../etc", strings.Repeat("r", 128), strings.Repeat("r", 129), "a b", "%2F",
	} {
		f.Add(seed)
	}
	k := NewKeys("roomcast:")
	f.Fuzz(func(t *testing.T, room string) {
		ok := ValidRoom(room)
		if ok != validRoomByHand(room) {
			t.Fatalf("ValidRoom(%q) = %v, want %v", room, ok, !ok)
		}
		if !ok {
			if got, isRoom := k.RoomFromChannel(k.Channel(room)); isRoom {
				t.Fatalf("channel of invalid room %q parses as room %q", room, got)
			}
			return
		}
		for _, key := range []string{k.meta(room), k.history(room), k.idempotency(room, "u{s}er", "k}{x")} {
			if got := hashTag(key); got != room {
				t.Fatalf("key %q hashes on %q, want the room %q", key, got, room)
			}
		}
		if got, isRoom := k.RoomFromChannel(k.Channel(room)); !isRoom || got != room {
			t.Fatalf("RoomFromChannel(Channel(%q)) = %q, %v", room, got, isRoom)
		}
		if got, isRoom := k.RoomFromChannel(k.ProbeChannel(room)); isRoom {
			t.Fatalf("probe channel %q parses as room %q", k.ProbeChannel(room), got)
		}
		if strings.ContainsAny(strings.TrimPrefix(k.Channel(room), "roomcast:"), `*?[]\`) {
			t.Fatalf("channel of %q holds a glob character", room)
		}
	})
}

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
