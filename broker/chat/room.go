package chat

import "regexp"

// roomPattern is the set of valid room ids. It excludes every character that
// has a meaning in Redis glob patterns, hash tags or our key layout.
var roomPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ValidRoom reports whether room is a valid room id.
func ValidRoom(room string) bool { return roomPattern.MatchString(room) }
