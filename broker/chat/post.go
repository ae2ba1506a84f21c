package chat

// Post is a message to store. Its fields must already be validated.
type Post struct {
	Room           string
	User           string
	Text           string
	IdempotencyKey string // optional
	// Metadata is a JSON object, compact, stored and served as given; ""
	// for none.
	Metadata string
	// ReplyTo is the message of the same room this one answers; zero for
	// none. The store refuses a post whose ReplyTo names no message of the
	// room with ErrUnknownReply.
	ReplyTo ID
	// Moderator exempts the post from the room's read-only and slow mode
	// settings: the poster may moderate the room, or is the backend.
	Moderator bool
	// Sent, when the publish hook rewrote the post, is what the user
	// sent: the idempotency key is checked against it, so that a retry
	// the hook rewrites again is still a replay.
	Sent *Sent
}

// Sent is the content a user sent before the publish hook rewrote it.
type Sent struct {
	Text        string
	Metadata    string
	SetMetadata bool // an edit's: its body gave metadata
}

// Posted is a stored message.
type Posted struct {
	ID       ID
	JSON     []byte // the message exactly as history and streams serve it
	Replayed bool   // true when an earlier post with the same idempotency key stored it
}

// PostResult is the outcome of one post of a batch: the stored message, or
// why it was not stored (ErrIdempotencyConflict, an error wrapping
// ErrUnavailable, …).
type PostResult struct {
	Posted Posted
	Err    error
}
