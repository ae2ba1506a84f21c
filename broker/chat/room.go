package chat

// maxRoomLen is the longest room id.
const maxRoomLen = 128

// ValidRoom reports whether room is a valid room id: 1 to 128 characters
// of [A-Za-z0-9._-]. The set excludes every character that has a meaning
// in Redis glob patterns, hash tags or our key layout. A loop, not a
// regular expression: it runs several times per request.
func ValidRoom(room string) bool {
	if len(room) < 1 || len(room) > maxRoomLen {
		return false
	}
	for i := 0; i < len(room); i++ {
		switch c := room[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
