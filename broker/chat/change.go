package chat

import (
	"bytes"
	"errors"
	"time"
)

// Change is an edit or the delete of a stored message. Its fields must
// already be validated; the store decides, atomically, whether the change
// is allowed.
type Change struct {
	Room string
	ID   ID // the message
	// User is who asks: the message's author may change it, within
	// EditWindow; a Moderator may change any message, at any time.
	User      string
	Moderator bool
	Delete    bool   // the delete; else an edit
	Text      string // the edit's new text
	// SetMetadata makes the edit replace the metadata with Metadata (""
	// for none); without it the edit keeps the metadata.
	SetMetadata bool
	Metadata    string
	// IfMatch lists the versions the message must have now; nil for any.
	IfMatch        []int64
	EditWindow     time.Duration // 0: authors may change their messages for ever
	IdempotencyKey string        // optional, shared with the user's posts in the room
	Sent           *Sent         // what the user sent, when the publish hook rewrote the edit (Post.Sent)
}

// Changed is the outcome of a Change: the message's new version, or with
// ErrVersionMismatch or ErrDeleted the message as it is.
type Changed struct {
	JSON     []byte
	Replayed bool // an earlier change with the same idempotency key stored it
}

// Errors of a Change that the store refused; it stored nothing. An unknown
// message is ErrUnknownMessage.
var (
	// ErrNotAuthor: the user neither wrote the message nor moderates the
	// room.
	ErrNotAuthor = errors.New("only the author or a moderator may change the message")
	// ErrEditWindow: the author's time to change the message has passed.
	ErrEditWindow = errors.New("the message is too old to be changed by its author")
	// ErrDeleted: the message is a tombstone.
	ErrDeleted = errors.New("the message is deleted")
	// ErrVersionMismatch: the message's version is not one of IfMatch.
	ErrVersionMismatch = errors.New("the message has another version")
)

// The events of a room's stored entries: a message, or a change of one.
const (
	EventMessage = "message"
	EventRead    = "read" // an ephemeral event: a user's read marker moved
	EventEdit    = "edit"
	EventDelete  = "delete"
)

// EntryOf splits a stored entry of a room, a message or a change (the log
// entry {"id":"<position>","event":"edit"|"delete","message":{...}} a change
// script writes), into its event name and the message JSON the event
// carries. Its id, the entry's position, is IDOf(entry) either way.
func EntryOf(entry []byte) (event string, message []byte) {
	const head = `{"id":"`
	const mid = `","event":"`
	if len(entry) < len(head) || string(entry[:len(head)]) != head {
		return EventMessage, entry
	}
	end := bytes.IndexByte(entry[len(head):], '"')
	if end < 0 {
		return EventMessage, entry
	}
	rest := entry[len(head)+end:]
	if !bytes.HasPrefix(rest, []byte(mid)) {
		return EventMessage, entry
	}
	rest = rest[len(mid):]
	for _, ev := range [...]string{EventEdit, EventDelete} {
		prefix := ev + `","message":`
		if len(rest) > len(prefix) && string(rest[:len(prefix)]) == prefix && rest[len(rest)-1] == '}' {
			return ev, rest[len(prefix) : len(rest)-1]
		}
	}
	return EventMessage, entry
}

// IsChange reports whether a stored entry is a change rather than a
// message.
func IsChange(entry []byte) bool {
	ev, _ := EntryOf(entry)
	return ev != EventMessage
}
