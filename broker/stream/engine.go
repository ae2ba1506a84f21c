// Package stream is roomcast's stream engine: it owns the connections of
// open event streams once their HTTP handler has handed them over, stitches
// each room's history to its live messages, and does all their writing.
//
// An owned stream costs one shallow goroutine, parked in a one-byte read of
// its connection (which notices a client that leaves) and woken by a read
// deadline in the past whenever there is something to write; it then
// writes everything queued with one writev. Heartbeats come from one timer
// wheel per engine. The wire format is not known here: the api package
// gives the frames (Options), so this package depends on broker only.
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

// Options configure an Engine. The frame functions give the wire format.
type Options struct {
	Rooms Rooms
	// Heartbeat is the longest a stream stays silent: a stream without
	// writes for that long is sent Ping.
	Heartbeat time.Duration
	Ping      []byte
	// WriteTimeout bounds a write; the deadline is renewed coarsely (when
	// less than half of it is left), not per write.
	WriteTimeout time.Duration
	// FlushDelay, when positive, holds a woken stream this long before it
	// writes, so that more frames go out in one system call.
	FlushDelay time.Duration
	// MaxQueue is how many frames a stream may have waiting; a stream
	// beyond it is dropped as too slow.
	MaxQueue int
	// EncodeReset is the event that tells a client its resume point is
	// lost.
	EncodeReset func(*chat.Reset) []byte
	// Goodbye is what a stream ending for reason writes last (a retry
	// advice and why): broker.ErrSlow, broker.ErrReset, broker.ErrClosed,
	// ErrExpired, or another error for a failure on the server's side.
	Goodbye func(reason error) []byte
	// CatchUpRetry is how long a catch-up whose history read finds Redis
	// unavailable keeps retrying before the stream ends; 0 means
	// DefaultCatchUpRetry.
	CatchUpRetry time.Duration
	// OnReset counts reset events sent; may be nil.
	OnReset func()
	Logger  *slog.Logger
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
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 256
	}
	if opts.CatchUpRetry <= 0 {
		opts.CatchUpRetry = DefaultCatchUpRetry
	}
	return &Engine{opts: opts, log: opts.Logger, wheel: newWheel(opts.Heartbeat)}
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
	// IDLine, when set, writes the id field of each stored message of
	// the stream itself (a stream of several rooms writes one id for all
	// their positions, from the positions it is given): the stream then
	// writes IDLine's bytes followed by WithoutID of the shared frame.
	// nil writes each message's shared frame as it is.
	IDLine func(room string, m *broker.Message, positions func(room string) chat.ID) []byte
	// WithoutID returns a frame without its id field; needed with IDLine.
	WithoutID func(frame []byte) []byte
	// EncodeReset, when set, is the stream's reset event for room instead
	// of Options.EncodeReset (a stream of several rooms names the room).
	EncodeReset func(room string, r *chat.Reset) []byte
	// OnEnd runs once when the stream has ended and its connection is
	// closed.
	OnEnd func()
}

// Open starts listening to spec's rooms for a new stream; live messages
// wait in it until Attach. On error (the hub cannot give a room's
// position, or has stopped) nothing is left open. The caller must then
// either Attach the stream or Abort it.
func (e *Engine) Open(ctx context.Context, spec Spec) (*Stream, error) {
	s := &Stream{e: e, spec: spec, done: make(chan struct{})}
	s.rooms = make([]*roomState, len(spec.Rooms))
	for i, r := range spec.Rooms {
		// Live messages wait until the room's position is settled.
		s.rooms[i] = &roomState{s: s, name: r.Name, behind: true}
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
