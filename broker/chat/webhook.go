package chat

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Webhook event types, as receivers see them in the body's "type".
const (
	EventMessageCreated = "message.created"
	EventMessageEdited  = "message.edited"
	EventMessageDeleted = "message.deleted"
	EventRoomOccupied   = "room.occupied"
	EventRoomVacated    = "room.vacated"
	EventMemberJoined   = "member.joined"
	EventMemberLeft     = "member.left"
)

// WebhookEventTypes are the event types a deployment may subscribe to, in
// the order the documentation lists them.
var WebhookEventTypes = []string{EventMessageCreated, EventMessageEdited, EventMessageDeleted, EventRoomOccupied, EventRoomVacated, EventMemberJoined, EventMemberLeft}

// OutboxEvent is a webhook event waiting in its room's outbox.
type OutboxEvent struct {
	Entry string    // its place in the outbox (a Redis stream id)
	ID    string    // the webhook-id: the same on every attempt
	Type  string    // one of WebhookEventTypes
	Time  time.Time // when it happened, Redis's clock
	Data  []byte    // the body's "data", JSON
}

// OutboxBatch is what an instance holding a room's lease may send next.
type OutboxBatch struct {
	Held     bool          // the lease is this caller's; false: stop, another instance has the room
	Events   []OutboxEvent // the oldest events, in order; empty when none is left
	Attempts int           // failed attempts at Events[0] so far
}

// OutboxFailure is a failed delivery of a room's oldest event.
type OutboxFailure struct {
	Event     OutboxEvent
	Error     string        // why, for the dead letter: a status or a transport error
	Status    int           // the receiver's HTTP status; 0 when it gave none
	Delivered []string      // entries delivered before it
	Backoff   time.Duration // the delay after a first failure; it doubles with each
	MaxDelay  time.Duration // ... up to this
	Jitter    float64       // 0 to 1: the delay is its half plus this share of its other half
	MaxAge    time.Duration // an event this old when it fails becomes a dead letter
}

// FailOutcome is what FailOutbox did.
type FailOutcome struct {
	Held     bool          // false: the lease was lost, nothing was recorded
	Dead     bool          // the event moved to the dead letters; the next one is due
	Attempts int           // failures of the event so far
	Retry    time.Duration // when not dead: the room is due again after this
}

// OutboxStats are the webhook queue's figures.
type OutboxStats struct {
	Rooms   int           // rooms with events pending
	Pending int           // events pending, in the rooms looked at
	Oldest  time.Duration // age of the oldest pending event
	Dead    int           // dead letters
}

// DeadEvent is an event that failed for its maximum age, kept for an
// operator to inspect and send again.
type DeadEvent struct {
	ID        string    `json:"id"`
	Room      string    `json:"room"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	// LastStatus is the receiver's status at the last attempt; 0 when it
	// gave none (a timeout, a refused connection).
	LastStatus int       `json:"last_status,omitempty"`
	DeadAt     time.Time `json:"dead_at"`
	Data       []byte    `json:"-"`
}

// DeadPage is a page of dead letters, the oldest death first.
type DeadPage struct {
	Events []DeadEvent
	Next   string // the cursor of the next page; "" on the last
}

// ErrNoDeadEvent is the answer for an id that is not a dead letter.
var ErrNoDeadEvent = errors.New("no such dead webhook event")

// DeadCursor is the place in the dead letters after the letter id that
// died at: "<ms>.<id>" ("." is in no webhook id).
func DeadCursor(at time.Time, id string) string {
	return strconv.FormatInt(at.UnixMilli(), 10) + "." + id
}

// ParseDeadCursor reads a DeadCursor, and false if c is not one.
func ParseDeadCursor(c string) (atMS int64, id string, ok bool) {
	ms, id, found := strings.Cut(c, ".")
	if !found || !digits(ms) {
		return 0, "", false
	}
	if _, valid := RoomOfWebhookID(id); !valid {
		return 0, "", false
	}
	at, err := strconv.ParseInt(ms, 10, 64)
	return at, id, err == nil
}

// WebhookID is the webhook-id of the event at entry of room's outbox:
// unique in the deployment, the same on every attempt, and without ".",
// which the signed content uses as its separator ("." in the room becomes
// "~", which room ids cannot hold).
func WebhookID(room, entry string) string {
	return "evt_" + strings.ReplaceAll(room, ".", "~") + "_" + entry
}

// RoomOfWebhookID is the room of a WebhookID, and false if id is not one.
func RoomOfWebhookID(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "evt_")
	at := strings.LastIndexByte(rest, '_')
	if !ok || at < 0 || !validEntry(rest[at+1:]) {
		return "", false
	}
	room := strings.ReplaceAll(rest[:at], "~", ".")
	return room, ValidRoom(room)
}

// validEntry reports whether e is a Redis stream id, <ms>-<seq>.
func validEntry(e string) bool {
	ms, seq, ok := strings.Cut(e, "-")
	return ok && digits(ms) && digits(seq)
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
