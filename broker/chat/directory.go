package chat

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// DirectoryQuery asks for a page of the room directory: rooms by their
// last post, newest first.
type DirectoryQuery struct {
	Prefix string // only rooms whose id starts with it; "" for all
	// After is a DirectoryPage's Next: the page starts after it; zero for
	// the first page.
	After DirectoryCursor
	Limit int // rooms at most, at least 1
	// Visible reports whether the caller may see a room; nil: every room.
	Visible func(room string) bool
}

// DirectoryRoom is one room of the directory.
type DirectoryRoom struct {
	Room         string
	Title        string    // "" for none
	LastActivity time.Time // its last post, to the millisecond
	LastMessage  []byte    // the latest message's JSON, as history serves it
	Seq          int64     // the room's latest position (posts and changes)
	Watchers     int64     // live (instance, user) presence entries
	Users        int64     // present users
}

// DirectoryPage is a page of the directory. It may hold fewer than Limit
// rooms (some were hidden by Visible or Prefix, or expired) and still
// have a Next; without Next it is the last page.
type DirectoryPage struct {
	Rooms []DirectoryRoom
	Next  DirectoryCursor // zero on the last page
}

// DirectoryCursor is the place of a room in the directory's order: last
// post time (ms) descending, then room id descending.
type DirectoryCursor struct {
	MS   int64
	Room string // "" for the zero cursor
}

// IsZero reports whether c is the zero cursor (the first page).
func (c DirectoryCursor) IsZero() bool { return c.Room == "" }

// String is c as a next value: "<ms>:<room>"; room ids hold no ':'.
func (c DirectoryCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(c.MS, 10) + ":" + c.Room
}

// ErrInvalidCursor is returned by ParseDirectoryCursor.
var ErrInvalidCursor = errors.New("not a directory cursor")

// ParseDirectoryCursor parses a DirectoryCursor's String.
func ParseDirectoryCursor(s string) (DirectoryCursor, error) {
	ms, room, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || n < 0 || !ValidRoom(room) {
		return DirectoryCursor{}, ErrInvalidCursor
	}
	return DirectoryCursor{MS: n, Room: room}, nil
}

// Before reports whether a room at ms comes before c in the directory's
// order (so on an earlier page).
func (c DirectoryCursor) Before(ms int64, room string) bool {
	return ms > c.MS || ms == c.MS && room >= c.Room
}
