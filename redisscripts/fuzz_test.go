package redisscripts

import (
	"strings"
	"testing"

	"roomcast/broker/chat"
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
		ok := chat.ValidRoom(room)
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
