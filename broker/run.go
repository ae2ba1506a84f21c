package broker

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// PubSubber is the part of a Redis client the hub's subscription uses.
type PubSubber interface {
	PSubscribe(ctx context.Context, patterns ...string) *redis.PubSub
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
}

var errProbeLost = errors.New("probe message not received: subscription is deaf")

// Run subscribes to every room of the deployment and delivers messages
// until ctx ends. It reconnects with backoff whenever the subscription
// fails and then repairs every room from history, so subscribers see no
// gap. When Run returns, every subscription is closed with ErrClosed and
// Subscribe fails with ErrClosed.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.running || h.closed.Load() {
		h.mu.Unlock()
		return errors.New("broker: Run called twice")
	}
	h.running = true
	h.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer h.shutdown(cancel)
	h.repairs.Add(1)
	go func() {
		defer h.repairs.Done()
		h.checkPeriodically(ctx)
	}()

	if h.shards != nil { // sharded mode: per-room SSUBSCRIBE instead of PSUBSCRIBE
		h.shards.run(ctx)
		return nil
	}
	backoff := newBackoff()
	for connected := false; ; {
		err := h.session(ctx, connected, backoff)
		if ctx.Err() != nil {
			return nil
		}
		connected = true
		h.ReportHealth("", fmt.Errorf("%w: %w", ErrNotReady, err))
		h.log.Warn("redis subscription lost; reconnecting", "err", err)
		if !backoff.wait(ctx) {
			return nil
		}
	}
}

func (h *Hub) shutdown(cancel context.CancelFunc) {
	cancel()
	h.repairs.Wait()
	h.mu.Lock()
	h.closed.Store(true) // before the rooms are emptied: Listen checks it under a room's lock
	h.health = map[string]error{"": fmt.Errorf("%w: %w", ErrNotReady, ErrClosed)}
	h.mu.Unlock()
	for _, r := range h.rooms.all() {
		r.mu.Lock()
		for l := range r.subs {
			h.dropLocked(r, l, ErrClosed)
		}
		r.mu.Unlock()
	}
}

// ReportHealth records whether the named subscription receives (err nil)
// or not; Ready is nil only while every reported subscription receives.
// The hub's own PSUBSCRIBE reports as "". The first nil report ends
// WaitStarted. A subscription that goes away reports nil last.
func (h *Hub) ReportHealth(subscription string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.health, subscription)
	} else {
		h.health[subscription] = err
	}
	if err == nil && !h.everReceived {
		h.everReceived = true
		close(h.started)
	}
}

// session runs one subscription connection until it fails or ctx ends.
// After a reconnect (resumed) it repairs every room, since messages
// published while no connection was subscribed never arrive.
func (h *Hub) session(ctx context.Context, resumed bool, backoff *backoff) error {
	ps := h.pubsub.PSubscribe(ctx, h.opts.Keys.Pattern())
	defer ps.Close()
	// A blocked receive does not watch ctx; closing the connection ends it.
	defer context.AfterFunc(ctx, func() { ps.Close() })()
	if err := h.awaitSubscribed(ctx, ps); err != nil {
		return err
	}
	h.ReportHealth("", nil)
	backoff.reset()
	if resumed {
		h.stats.reconnects.Add(1)
		h.log.Info("redis subscription restored; repairing rooms from history")
		h.checkRooms(ctx, nil)
	}

	var probeSent time.Time // zero while no probe is outstanding
	for {
		msg, err := ps.ReceiveTimeout(ctx, h.opts.CheckInterval)
		switch {
		case isTimeout(err) && !probeSent.IsZero():
			return errProbeLost
		case isTimeout(err):
			if err := h.publishProbe(ctx); err != nil {
				return err
			}
			probeSent = time.Now()
			continue
		case err != nil:
			return err
		}
		probeSent = time.Time{}
		if m, ok := msg.(*redis.Message); ok {
			h.Receive(ctx, m.Channel, m.Payload)
		}
	}
}

func (h *Hub) awaitSubscribed(ctx context.Context, ps *redis.PubSub) error {
	msg, err := ps.ReceiveTimeout(ctx, h.opts.Timeout)
	if err != nil {
		return fmt.Errorf("psubscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return fmt.Errorf("psubscribe: unexpected reply %T", msg)
	}
	return nil
}

func (h *Hub) publishProbe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	if err := h.pubsub.Publish(ctx, h.probe, "probe").Err(); err != nil {
		return fmt.Errorf("publish probe: %w", err)
	}
	return nil
}

// receive is Receive for a go-redis message.
func (h *Hub) receive(ctx context.Context, pm *redis.Message) { h.Receive(ctx, pm.Channel, pm.Payload) }

// Receive takes one Pub/Sub message of this deployment: the entry point of
// every subscription (the hub's PSUBSCRIBE, or per-room subscriptions). A
// payload starting with '{' is a stored message; one starting with '!' is
// an ephemeral event "!<name>\n<json>". Probes and malformed payloads are
// ignored. It never blocks on a listener; call it from one goroutine per
// subscription.
func (h *Hub) Receive(ctx context.Context, channel, payload string) {
	name, ok := h.opts.Keys.RoomOf(channel)
	if !ok {
		return // a probe, ours or another hub's
	}
	if strings.HasPrefix(payload, "!") {
		event, data, ok := strings.Cut(payload[1:], "\n")
		if !ok || event == "" {
			h.log.Warn("ignoring malformed event", "channel", channel)
			return
		}
		m := &Message{Room: name, Event: event, Data: []byte(data)}
		if h.opts.Encode != nil {
			m.Frame = h.opts.Encode(m)
		}
		h.dispatch(ctx, m)
		return
	}
	m, err := h.newMessage(name, []byte(payload))
	if err != nil {
		h.log.Warn("ignoring malformed message", "channel", channel, "err", err)
		return
	}
	h.dispatch(ctx, m)
}

// checkPeriodically runs checkRooms every CheckInterval, and when asked
// to, until ctx ends.
func (h *Hub) checkPeriodically(ctx context.Context) {
	t := time.NewTicker(h.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if h.Ready() == nil {
				h.checkRooms(ctx, nil)
			}
		case <-h.checkNow:
			h.checkRooms(ctx, nil)
		case <-ctx.Done():
			return
		}
	}
}

// Recheck compares the given rooms' positions with Redis and repairs those
// behind, as after a reconnect: the seam for a subscription that lost and
// regained some rooms (a shard's connection). Rooms without local
// listeners are ignored. It blocks for one Redis read.
func (h *Hub) Recheck(ctx context.Context, rooms []string) {
	h.checkRooms(ctx, rooms)
}

// checkRooms compares the position of every room (or of only) with local subscribers
// against Redis: the only way to notice a message lost in a room that stays
// quiet afterwards. A room behind Redis is repaired. A room that Redis no
// longer knows (expired, lost) waits for its next epoch. A room whose
// sequence went back within its epoch (a failover lost writes) drops its
// subscribers with ErrReset, so that they resume and are told.
func (h *Hub) checkRooms(ctx context.Context, only []string) {
	var (
		rooms  []*room
		names  []string
		before []chat.ID // what each room had before the read
	)
	add := func(r *room) { // r.mu held
		if !r.repairing && !r.gone {
			rooms = append(rooms, r)
			names = append(names, r.name)
			before = append(before, r.last)
		}
	}
	if only == nil {
		for _, r := range h.rooms.all() {
			r.mu.Lock()
			add(r)
			r.mu.Unlock()
		}
	} else {
		for _, name := range only {
			if r := h.lockRoom(name); r != nil {
				add(r)
				r.mu.Unlock()
			}
		}
	}
	if len(names) == 0 {
		return
	}
	ctx2, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	ids, err := h.opts.History.Positions(ctx2, names)
	cancel()
	if err != nil {
		h.log.Warn("checking room positions", "err", err)
		return
	}
	for i, r := range rooms {
		r.mu.Lock()
		delivered, inRedis := r.last, ids[i]
		wentBack := false
		switch {
		case r.gone || r.last != before[i]:
			// Gone, or delivered more since the read: look again next time.
		case inRedis == r.last:
		case inRedis.Epoch == "":
			r.last = chat.ID{} // its next message starts a new epoch
			r.ring.clear()
		case inRedis.Epoch == r.last.Epoch && inRedis.Seq < r.last.Seq:
			wentBack = true
			r.ring.clear()
			for l := range r.subs {
				h.dropLocked(r, l, ErrReset)
			}
		default: // behind Redis, or Redis has another epoch
			h.startRepairLocked(ctx, r)
		}
		r.mu.Unlock()
		if wentBack { // logged once the lock is released
			h.log.Warn("room sequence went back: Redis lost acknowledged writes", "room", r.name,
				"delivered", delivered.String(), "redis", inRedis.String())
		}
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// backoff waits exponentially longer between retries, with jitter.
type backoff struct{ next time.Duration }

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func newBackoff() *backoff { return &backoff{next: minBackoff} }

func (b *backoff) reset() { b.next = minBackoff }

// wait sleeps for the next interval; it returns false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func randomName() string {
	b := make([]byte, 8)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}
