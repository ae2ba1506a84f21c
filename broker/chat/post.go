package chat

// Post is a message to store. Its fields must already be validated.
type Post struct {
	Room           string
	User           string
	Text           string
	IdempotencyKey string // optional
}

// Posted is a stored message.
type Posted struct {
	ID       ID
	JSON     []byte // the message exactly as history and streams serve it
	Replayed bool   // true when an earlier post with the same idempotency key stored it
}
