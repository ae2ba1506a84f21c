// Package stream is roomcast's stream engine: it owns the connections of
// open event streams once their HTTP handler has handed them over, stitches
// each room's history to its live messages, and does all their writing.
//
// An owned stream costs one shallow goroutine, parked in a one-byte read of
// its connection (which notices a client that leaves) and woken by a read
// deadline in the past whenever there is something to write; it then
// writes everything queued with one writev. Heartbeats come from one timer
// wheel per engine. The wire format is not known here: messages come
// encoded by the hub, and the other frames from Options.Frames, which the
// app wiring builds once (api/sse.Frames) for the hub, the engine and the
// api alike; this package depends on broker only.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"roomcast/broker"
	"roomcast/broker/chat"
)

// Rooms is what the engine needs of the hub.
type Rooms interface {
	Listen(ctx context.Context, room string, l broker.Listener) (chat.ID, error)
	Unlisten(room string, l broker.Listener) bool
	Since(ctx context.Context, room string, from chat.ID) (broker.Page, error)
}

var _ Rooms = (*broker.Hub)(nil)

// ErrExpired ends a stream whose Spec.Expires has passed.
var ErrExpired = errors.New("stream credentials expired")

// ErrBanned and ErrRevoked are the reasons the api ends a stream (End,
// Leave) of a user banned from its room, or whose token was revoked.
var (
	ErrBanned  = errors.New("banned from the room")
	ErrRevoked = errors.New("token revoked")
)

// Frames is the wire format of what a stream writes besides messages
// (api/sse.Frames); the hub's Encoder gives messages theirs.
type Frames interface {
	// Reset is the event telling a client that room's position is lost;
	// room is "" in a stream of one room, whose events name none.
	Reset(room string, r *chat.Reset) []byte
	// Goodbye is what a stream ending for reason writes last (a retry
	// advice and why): broker.ErrSlow, broker.ErrReset, broker.ErrClosed,
	// ErrExpired, ErrBanned, ErrRevoked, or another error for a failure on
	// the server's side.
	Goodbye(reason error) []byte
	// Ping is the heartbeat of a stream silent for HeartbeatInterval.
	Ping() []byte
	// Event is the frame of an ephemeral event, such as the read event a
	// user's stream writes after the user's own message.
	Event(name string, data []byte) []byte
}

// Metrics counts what streams do (api/metrics.Metrics).
type Metrics interface {
	// Reset counts a reset event sent.
	Reset()
}

// Options configure an Engine. Fields named after a setting take its value
// (the environment variable of the same name).
type Options struct {
	Rooms  Rooms
	Frames Frames // required
	// HeartbeatInterval is the longest a stream stays silent: a stream
	// without writes for that long is sent a ping.
	HeartbeatInterval time.Duration
	// StreamWriteTimeout bounds a write; the deadline is renewed coarsely
	// (when less than half of it is left), not per write.
	StreamWriteTimeout time.Duration
	// StreamFlushDelay, when positive, holds a woken stream this long
	// before it writes, so that more frames go out in one system call.
	StreamFlushDelay time.Duration
	// ClientBuffer is how many messages a stream may have waiting; a stream
	// beyond it is dropped as too slow. 0 means 256.
	ClientBuffer int
	// CatchUpRetry is how long a catch-up whose history read finds Redis
	// unavailable keeps retrying before the stream ends; 0 means
	// DefaultCatchUpRetry.
	CatchUpRetry time.Duration
	Metrics      Metrics // may be nil
	Logger       *slog.Logger
}

// DefaultCatchUpRetry is Options.CatchUpRetry's default: a few times the
// default Redis timeout.
const DefaultCatchUpRetry = 5 * time.Second

// Engine runs the open streams of a process.
type Engine struct {
	opts  Options
	log   *slog.Logger
	wheel *wheel
}

// New returns an engine. It starts no goroutine until a stream opens.
func New(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ClientBuffer <= 0 {
		opts.ClientBuffer = 256
	}
	if opts.CatchUpRetry <= 0 {
		opts.CatchUpRetry = DefaultCatchUpRetry
	}
	return &Engine{opts: opts, log: opts.Logger, wheel: newWheel(opts.HeartbeatInterval)}
}

// Room is one room of a stream and where it resumes.
type Room struct {
	Name string
	// Resume is the last message the client has; nil to start live.
	Resume *chat.ID
}

// Spec describes a stream to open.
type Spec struct {
	Rooms []Room
	// Expires, when not zero, ends the stream with ErrExpired.
	Expires time.Time
	// Cursor, set for a stream of several rooms, gives the stream one id
	// for all their positions: each stored message is written as
	// Cursor's id line, then the message's shared Body, and reset events
	// name their room. nil writes each message's own id line.
	Cursor Cursor
	// User is the stream's user, "" for none: its streams get the user's
	// own read events, and a read event after each of the user's messages
	// (posting marks the room read); other users' read events are
	// receipts.
	User string
	// OnEnd runs once when the stream has ended and its connection is
	// closed.
	OnEnd func()
}

// Cursor is the one id of a stream of several rooms (api/sse.Cursor). The
// engine calls it with the stream's lock held, in the order of the
// stream's writes, so it needs no lock of its own.
type Cursor interface {
	// Line returns the id line to write before a message of room i (its
	// index in Spec.Rooms): the stream's position, which is pos(j) for
	// each room j, pos(i) being the message's id. On error the message is
	// written without an id line, so that the client's Last-Event-ID
	// stays at the last good one: it may see messages twice, never lose
	// one.
	Line(i int, pos func(j int) chat.ID) ([]byte, error)
	// Forget starts room i afresh, after its reset event.
	Forget(i int)
}

// Open starts listening to spec's rooms for a new stream; live messages
// wait in it until Attach. On error (the hub cannot give a room's
// position, or has stopped) nothing is left open. The caller must then
// either Attach the stream or Abort it.
func (e *Engine) Open(ctx context.Context, spec Spec) (*Stream, error) {
	s := &Stream{e: e, spec: spec, done: make(chan struct{})}
	if spec.Cursor != nil {
		s.positions = s.positionOf
	}
	s.rooms = make([]*roomState, len(spec.Rooms))
	for i, r := range spec.Rooms {
		// Live messages wait until the room's position is settled.
		s.rooms[i] = &roomState{s: s, index: i, name: r.Name, behind: true}
	}
	for i, r := range s.rooms {
		start, err := e.opts.Rooms.Listen(ctx, r.name, r)
		if err != nil {
			for _, done := range s.rooms[:i] {
				e.opts.Rooms.Unlisten(done.name, done)
			}
			return nil, err
		}
		s.mu.Lock()
		r.listening = true
		if resume := spec.Rooms[i].Resume; resume != nil {
			r.pos = *resume // caught up from history once attached
		} else {
			r.pos = start // the hub delivers everything after it
			s.settleLocked(r, false)
		}
		s.mu.Unlock()
	}
	return s, nil
}
