package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// Frames is roomcast's event-stream wire format: the bytes of every frame
// a stream writes, in one place. The app wiring builds one Frames and hands
// it to the hub (message and event frames, encoded once per message), to
// the stream engine (resets, goodbyes, pings) and to the api (openings and
// refusals of streams). A Frames is a value without state: safe for
// concurrent use.
type Frames struct {
	// SSERetry is the reconnection delay streams advise. A goodbye or
	// refusal that many clients may get at once (a restart, a busy server)
	// advises a random share of it instead, so that they do not all come
	// back at once.
	SSERetry time.Duration
}

var (
	_ broker.Encoder = Frames{}
	_ stream.Frames  = Frames{}
)

// Message returns a stored entry's frame as one buffer cut in two: the
// id line and the rest (event name and data), so that a stream of several
// rooms can write its own id line before the shared rest. A message is a
// "message" event; a change (chat.EntryOf) an "edit" or "delete" event
// whose data is the message's new version and whose id is the change's
// position.
func (Frames) Message(id chat.ID, data []byte) (idLine, body []byte) {
	event, payload := chat.EntryOf(data)
	frame := AppendEvent(make([]byte, 0, len(payload)+64), id.String(), event, payload)
	n := bytes.IndexByte(frame, '\n') + 1 // an id is never empty: the frame starts with its line
	return frame[:n:n], frame[n:]
}

// Event returns the frame of an ephemeral event (typing, join, …), which
// has no id.
func (Frames) Event(name string, data []byte) []byte {
	return AppendEvent(make([]byte, 0, len(data)+32), "", name, data)
}

// Reset returns the reset event that tells a client its position in a room
// is lost and why. room is "" in a stream of one room; a stream of several
// names the room in the event's data.
func (Frames) Reset(room string, r *chat.Reset) []byte {
	var data []byte
	if room == "" {
		data, _ = json.Marshal(r)
	} else {
		data, _ = json.Marshal(roomReset{Room: room, Reset: r})
	}
	return AppendEvent(nil, "", "reset", data)
}

// roomReset is a Reset that names its room, as multi-room streams send it.
type roomReset struct {
	Room string `json:"room"`
	*chat.Reset
}

// Goodbye is the last thing a stream ending for reason writes: when to
// reconnect, and why it ends.
func (f Frames) Goodbye(reason error) []byte {
	switch {
	case errors.Is(reason, broker.ErrSlow):
		return AppendComment(AppendRetry(nil, f.SSERetry.Milliseconds()),
			"disconnected: client too slow; reconnect with Last-Event-ID")
	case errors.Is(reason, broker.ErrReset):
		return AppendComment(AppendRetry(nil, f.jitter()),
			"the room's history went back; reconnect with Last-Event-ID")
	case errors.Is(reason, stream.ErrExpired):
		return AppendComment(nil, "token expired; reconnect with a new token")
	case errors.Is(reason, stream.ErrBanned):
		return AppendComment(nil, "banned from the room")
	case errors.Is(reason, stream.ErrRevoked):
		return AppendComment(nil, "token revoked; reconnect with a new token")
	case errors.Is(reason, broker.ErrClosed):
		return AppendComment(AppendRetry(nil, f.jitter()), "server going away; reconnect")
	default:
		return AppendComment(AppendRetry(nil, f.jitter()), "interrupted; reconnect")
	}
}

var ping = AppendComment(nil, "ping")

// Ping is the heartbeat comment of a silent stream; every stream shares
// its bytes.
func (Frames) Ping() []byte { return ping }

// Opening is what a stream writes first, after its response head: the
// reconnection delay.
func (f Frames) Opening() []byte { return AppendRetry(nil, f.SSERetry.Milliseconds()) }

// Refusal is the whole body of a stream that cannot start for a passing
// reason (Redis unreachable, shutting down, too busy): a retry advice and
// why, after which the server closes the stream.
func (f Frames) Refusal(why string) []byte {
	return AppendComment(AppendRetry(nil, f.jitter()), why)
}

// jitter spreads the reconnections of many clients over up to SSERetry.
func (f Frames) jitter() int64 {
	ms := max(f.SSERetry.Milliseconds(), 2)
	return ms/4 + rand.Int64N(ms*3/4)
}
