package auth

import (
	"fmt"
	"strings"
)

// Rooms are the rooms a token may read (history and streams), write (post
// to) and moderate (act on other users' messages), as room-id patterns: an
// exact room id, or a prefix followed by "*" that matches every room
// starting with it ("support-*"); "*" alone matches every room. No
// permission implies another.
type Rooms struct {
	Read     []string `json:"read"`
	Write    []string `json:"write"`
	Moderate []string `json:"moderate"`
}

// AllRooms grants every permission on every room: what a server API key
// holds (ServerClaims).
func AllRooms() Rooms {
	return Rooms{Read: []string{"*"}, Write: []string{"*"}, Moderate: []string{"*"}}
}

// CanRead reports whether a pattern of r.Read matches room.
func (r Rooms) CanRead(room string) bool { return MatchAny(r.Read, room) }

// CanWrite reports whether a pattern of r.Write matches room.
func (r Rooms) CanWrite(room string) bool { return MatchAny(r.Write, room) }

// CanModerate reports whether a pattern of r.Moderate matches room.
func (r Rooms) CanModerate(room string) bool { return MatchAny(r.Moderate, room) }

// MatchAny reports whether room matches one of patterns: a room id, or a
// prefix and "*".
func MatchAny(patterns []string, room string) bool {
	for _, p := range patterns {
		if prefix, wildcard := strings.CutSuffix(p, "*"); wildcard {
			if strings.HasPrefix(room, prefix) {
				return true
			}
		} else if p == room {
			return true
		}
	}
	return false
}

// ParseRooms parses permissions written as a comma-separated list of
// "read:PATTERN", "write:PATTERN" and "moderate:PATTERN" entries, such as
// "read:*,write:support-*". "" and "none" grant nothing.
func ParseRooms(spec string) (Rooms, error) {
	var r Rooms
	if spec == "" || spec == "none" {
		return r, nil
	}
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		kind, pattern, _ := strings.Cut(entry, ":")
		if kind != "read" && kind != "write" && kind != "moderate" {
			return Rooms{}, fmt.Errorf("%q: want read:PATTERN, write:PATTERN or moderate:PATTERN", entry)
		}
		if !validPattern(pattern) {
			return Rooms{}, fmt.Errorf("%q: want %s:ROOM, %s:PREFIX* or %s:*", entry, kind, kind, kind)
		}
		switch kind {
		case "read":
			r.Read = append(r.Read, pattern)
		case "write":
			r.Write = append(r.Write, pattern)
		default:
			r.Moderate = append(r.Moderate, pattern)
		}
	}
	return r, nil
}

// validPattern accepts the characters of room ids with an optional
// trailing "*".
func validPattern(p string) bool {
	body := strings.TrimSuffix(p, "*")
	if p == "" || len(body) > 128 {
		return false
	}
	for _, c := range []byte(body) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}
