package chat

import "errors"

// Errors that cross layers: the store detects them, api maps them to
// statuses in one place.
var (
	// ErrUnavailable wraps every failure to reach the store (Redis) in
	// time; it is transient, so a client may retry.
	ErrUnavailable = errors.New("redis unavailable")
	// ErrIdempotencyConflict is returned by a post whose idempotency key
	// was already used for a message with other content.
	ErrIdempotencyConflict = errors.New("idempotency key reused with different content")
)

// ErrUnknownReply is returned by a post whose ReplyTo names no retained
// message of its room; nothing is stored.
var ErrUnknownReply = errors.New("the message replied to is not in the room")
