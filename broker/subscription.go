package broker

import (
	"context"
	"errors"
	"sync"

	"roomcast/broker/chat"
)

// Reasons a Subscription's channel is closed, reported by Err, and reasons
// passed to Listener.Dropped.
var (
	// ErrClosed means the hub is shutting down.
	ErrClosed = errors.New("broker closed")
	// ErrSlow means the subscriber did not keep up and its queue filled.
	ErrSlow = errors.New("subscriber too slow")
	// ErrUnsubscribed means the subscriber called Close.
	ErrUnsubscribed = errors.New("unsubscribed")
	// ErrReset means Redis lost messages the subscriber may have had: it
	// should resume from its last message to learn what changed.
	ErrReset = errors.New("room state went back")
)

// Subscription receives the stored messages of one room over a channel, in
// order, from the moment it was created; it skips ephemeral events. The hub
// closes C when it drops the subscription; Err then tells why. It is the
// channel-shaped Listener, for callers that want one goroutine per
// subscriber; the stream engine listens without one.
type Subscription struct {
	hub   *Hub
	room  string
	start chat.ID
	ch    chan *Message

	once sync.Once
	mu   sync.Mutex
	err  error // set before ch is closed
}

var _ Listener = (*Subscription)(nil)

// Subscribe starts a subscription to room. The first subscriber of a room
// in this process reads the room's position from Redis, so Subscribe can
// fail with chat.ErrUnavailable; it returns ErrNotStarted before the hub's
// first subscription and ErrClosed once the hub has stopped. The caller
// must Close the subscription.
func (h *Hub) Subscribe(ctx context.Context, name string) (*Subscription, error) {
	sub := &Subscription{hub: h, room: name, ch: make(chan *Message, h.opts.ClientBuffer)}
	start, err := h.Listen(ctx, name, sub)
	if err != nil {
		return nil, err
	}
	sub.start = start
	return sub, nil
}

// Deliver queues m without blocking; false when the queue is full.
func (s *Subscription) Deliver(m *Message) bool {
	if m.Ephemeral() {
		return true
	}
	select {
	case s.ch <- m:
		return true
	default:
		return false
	}
}

// Dropped closes C with reason err.
func (s *Subscription) Dropped(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.ch)
}

// C delivers the room's messages, each directly following the one before
// (or the subscription's Start). It is closed when the subscription ends.
func (s *Subscription) C() <-chan *Message { return s.ch }

// Start is the room's position when the subscription began: the first
// message on C follows it.
func (s *Subscription) Start() chat.ID { return s.start }

// Err tells why C was closed; it is nil while C is open.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is safe to call more than once and from
// any goroutine.
func (s *Subscription) Close() {
	s.once.Do(func() {
		if s.hub.Unlisten(s.room, s) {
			s.Dropped(ErrUnsubscribed)
		}
	})
}
