// Package control keeps every instance's view of a deployment's bans and
// token revocations in memory, so that checking a request costs no Redis
// round trip. One Watcher per process subscribes to the deployment's
// control channel (redisscripts.Keys.ControlChannel), on which the scripts
// that change bans and revocations announce each change, and re-reads the
// whole state from Redis after every (re)subscription, since what was
// published while it was not subscribed never arrives.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// Subscriber is the part of a Redis client the watcher subscribes with.
type Subscriber interface {
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Store reads the whole state (redisscripts.Store).
type Store interface {
	AllBans(ctx context.Context) ([]chat.Ban, error)
	Revocations(ctx context.Context) ([]chat.Revocation, error)
}

// Options configure a Watcher.
type Options struct {
	Channel string // the control channel
	Store   Store
	// RedisTimeout bounds the wait for the subscription's confirmation and
	// each read of the state.
	RedisTimeout time.Duration
	// CheckInterval is how long the subscription may stay silent before a
	// PING proves it alive; one unanswered for as long again reconnects.
	CheckInterval time.Duration
	// OnChange is called, from the watcher's goroutine and after the
	// change is applied, for each ban set and each revocation, also those
	// found by a re-read that were published while the watcher was not
	// subscribed. It must not block; nil for none.
	OnChange func(chat.Control)
	Logger   *slog.Logger
}

// Watcher holds the bans and revocations in force. Its methods are safe
// for concurrent use; Run feeds it.
type Watcher struct {
	sub  Subscriber
	opts Options
	log  *slog.Logger

	started     chan struct{}
	startedOnce sync.Once
	health      atomic.Pointer[error] // nil while subscribed and the state is read

	mu    sync.RWMutex
	bans  map[banKey]chat.Ban
	jtis  map[string]time.Time         // jti -> when the revocation expires
	users map[string][]chat.Revocation // user -> their revocations by issued_before
}

type banKey struct{ room, user string }

// New returns a Watcher on sub; it holds nothing until Run has read the
// state.
func New(sub Subscriber, opts Options) *Watcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = 10 * time.Second
	}
	if opts.RedisTimeout <= 0 {
		opts.RedisTimeout = time.Second
	}
	return &Watcher{sub: sub, opts: opts, log: opts.Logger, started: make(chan struct{}),
		bans: map[banKey]chat.Ban{}, jtis: map[string]time.Time{}, users: map[string][]chat.Revocation{}}
}

// Ban returns user's ban in room if one is in force now.
func (w *Watcher) Ban(room, user string) (chat.Ban, bool) {
	w.mu.RLock()
	b, ok := w.bans[banKey{room, user}]
	w.mu.RUnlock()
	if !ok || !b.ActiveAt(time.Now()) {
		return chat.Ban{}, false
	}
	return b, true
}

// Revoked reports whether a token of user with ID jti ("" for none)
// issued at iat (zero if unknown) is revoked.
func (w *Watcher) Revoked(user, jti string, iat time.Time) bool {
	now := time.Now()
	w.mu.RLock()
	defer w.mu.RUnlock()
	if jti != "" {
		if exp, ok := w.jtis[jti]; ok && exp.After(now) {
			return true
		}
	}
	for _, r := range w.users[user] {
		if r.Expires.After(now) && r.Revokes(user, jti, iat) {
			return true
		}
	}
	return false
}

// ErrNotReady wraps the reason the watcher is not subscribed: bans and
// revocations made meanwhile do not reach this instance until it is
// again.
var ErrNotReady = errors.New("control subscription down")

// Ready is nil while the watcher is subscribed and has read the state;
// before the first read and after a failure it wraps ErrNotReady.
func (w *Watcher) Ready() error {
	select {
	case <-w.started:
	default:
		return fmt.Errorf("%w: not started", ErrNotReady)
	}
	if err := w.health.Load(); err != nil {
		return *err
	}
	return nil
}

// WaitStarted blocks until the state has been read once, or ctx ends.
func (w *Watcher) WaitStarted(ctx context.Context) error {
	select {
	case <-w.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run subscribes and applies every change until ctx ends, reconnecting
// with backoff whenever the subscription fails; it returns ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	wait := 50 * time.Millisecond
	for {
		subscribed, err := w.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if subscribed {
			wait = 50 * time.Millisecond
		}
		down := fmt.Errorf("%w: %w", ErrNotReady, err)
		w.health.Store(&down)
		w.log.Warn("control subscription lost; reconnecting", "err", err)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

var errDeaf = errors.New("control subscription did not answer a ping")

// session runs one subscription until it fails or ctx ends; subscribed
// reports whether it got as far as reading the state.
func (w *Watcher) session(ctx context.Context) (subscribed bool, _ error) {
	ps := w.sub.Subscribe(ctx, w.opts.Channel)
	defer ps.Close()
	// A blocked receive does not watch ctx; closing the connection ends it.
	defer context.AfterFunc(ctx, func() { ps.Close() })()
	msg, err := ps.ReceiveTimeout(ctx, w.opts.RedisTimeout)
	if err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return false, fmt.Errorf("subscribe: unexpected reply %T", msg)
	}
	if err := w.reload(ctx); err != nil {
		return false, err
	}
	w.health.Store(nil)
	w.startedOnce.Do(func() { close(w.started) })
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, w.opts.CheckInterval)
		switch {
		case isTimeout(err) && pinged:
			return true, errDeaf
		case isTimeout(err):
			if err := ps.Ping(ctx); err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
			pinged = true
			w.prune(time.Now())
			continue
		case err != nil:
			return true, err
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			w.receive(m.Payload)
		}
	}
}

// reload replaces the state with what Redis holds, and reports what is
// new to OnChange.
func (w *Watcher) reload(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.RedisTimeout)
	defer cancel()
	bans, err := w.opts.Store.AllBans(ctx)
	if err != nil {
		return fmt.Errorf("read bans: %w", err)
	}
	revs, err := w.opts.Store.Revocations(ctx)
	if err != nil {
		return fmt.Errorf("read revocations: %w", err)
	}
	fresh := &Watcher{bans: make(map[banKey]chat.Ban, len(bans)), jtis: map[string]time.Time{}, users: map[string][]chat.Revocation{}}
	now := time.Now()
	for _, b := range bans {
		if b.ActiveAt(now) {
			fresh.bans[banKey{b.Room, b.User}] = b
		}
	}
	revs = slices.DeleteFunc(revs, func(r chat.Revocation) bool { return !r.Expires.After(now) })
	for _, r := range revs {
		fresh.addRevocationLocked(r)
	}
	var news []chat.Control
	w.mu.Lock()
	for k, b := range fresh.bans {
		if old, ok := w.bans[k]; !ok || !old.At.Equal(b.At) {
			news = append(news, chat.Control{Op: chat.ControlBan, Ban: &b})
		}
	}
	for _, r := range revs {
		if !w.knownLocked(r) {
			news = append(news, chat.Control{Op: chat.ControlRevoke, Revocation: &r})
		}
	}
	w.bans, w.jtis, w.users = fresh.bans, fresh.jtis, fresh.users
	w.mu.Unlock()
	w.log.Debug("control state read", "bans", len(bans), "revocations", len(revs), "new", len(news))
	for _, c := range news {
		w.notify(c)
	}
	return nil
}

// receive applies one control message.
func (w *Watcher) receive(payload string) {
	var c chat.Control
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		w.log.Warn("control message ignored", "err", err)
		return
	}
	w.Apply(c)
}

// Apply applies a change as if it had come on the control channel, and
// reports it to OnChange (a lift is not reported). The instance that made
// the change applies it at once, so that its next request sees it; the
// message that follows on the channel changes nothing more, and messages
// arrive in the order Redis ran the changes, so every instance ends with
// the same state.
func (w *Watcher) Apply(c chat.Control) {
	w.mu.Lock()
	switch {
	case c.Op == chat.ControlBan && c.Ban != nil:
		w.bans[banKey{c.Ban.Room, c.Ban.User}] = *c.Ban
	case c.Op == chat.ControlLift && c.Ban != nil:
		delete(w.bans, banKey{c.Ban.Room, c.Ban.User})
	case c.Op == chat.ControlRevoke && c.Revocation != nil:
		w.addRevocationLocked(*c.Revocation)
	default:
		w.mu.Unlock()
		w.log.Warn("control message ignored", "op", c.Op)
		return
	}
	w.mu.Unlock()
	if c.Op != chat.ControlLift {
		w.notify(c)
	}
}

func (w *Watcher) notify(c chat.Control) {
	if w.opts.OnChange != nil {
		w.opts.OnChange(c)
	}
}

func (w *Watcher) addRevocationLocked(r chat.Revocation) {
	if r.JTI != "" {
		if r.Expires.After(w.jtis[r.JTI]) {
			w.jtis[r.JTI] = r.Expires
		}
		return
	}
	list := w.users[r.User]
	for i, old := range list {
		if old.IssuedBefore.Equal(r.IssuedBefore) {
			if r.Expires.After(old.Expires) {
				list[i].Expires = r.Expires
			}
			return
		}
	}
	w.users[r.User] = append(list, r)
}

func (w *Watcher) knownLocked(r chat.Revocation) bool {
	if r.JTI != "" {
		_, ok := w.jtis[r.JTI]
		return ok
	}
	for _, old := range w.users[r.User] {
		if old.IssuedBefore.Equal(r.IssuedBefore) {
			return true
		}
	}
	return false
}

// prune forgets bans that have ended and revocations that have expired.
func (w *Watcher) prune(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, b := range w.bans {
		if !b.ActiveAt(now) {
			delete(w.bans, k)
		}
	}
	for jti, exp := range w.jtis {
		if !exp.After(now) {
			delete(w.jtis, jti)
		}
	}
	for user, list := range w.users {
		kept := list[:0]
		for _, r := range list {
			if r.Expires.After(now) {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(w.users, user)
		} else {
			w.users[user] = kept
		}
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return err != nil && errors.As(err, &netErr) && netErr.Timeout()
}
