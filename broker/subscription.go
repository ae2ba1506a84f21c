package broker

import (
	"errors"
	"sync"

	"roomcast/redisscripts"
)

// Reasons a Subscription's channel is closed, reported by Err.
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

// Subscription receives the messages of one room, in order, from the moment
// it was created. The hub closes C when it drops the subscription; Err then
// tells why.
type Subscription struct {
	hub   *Hub
	room  string
	start redisscripts.ID
	ch    chan *Message

	once sync.Once
	err  error // written under hub.mu before ch is closed
}

// C delivers the room's messages, each directly following the one before
// (or the subscription's Start). It is closed when the subscription ends.
func (s *Subscription) C() <-chan *Message { return s.ch }

// Start is the room's position when the subscription began: the first
// message on C follows it.
func (s *Subscription) Start() redisscripts.ID { return s.start }

// Err tells why C was closed; it is nil while C is open.
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is safe to call more than once and from
// any goroutine.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		defer s.hub.mu.Unlock()
		s.hub.dropLocked(s, ErrUnsubscribed)
	})
}
