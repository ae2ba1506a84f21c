package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// PubSubber is the part of a Redis client the hub's pattern subscription
// uses.
type PubSubber interface {
	PSubscribe(ctx context.Context, patterns ...string) *redis.PubSub
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
}

var errProbeLost = errors.New("probe message not received: subscription is deaf")

// patternSubscriber receives every room of the deployment over one
// PSUBSCRIBE connection (BROKER_MODE=pattern). It reconnects with backoff
// whenever the connection fails, and then has every room checked, since
// messages published while no connection was subscribed never arrive. A
// connection that receives nothing for a DeliveryCheckInterval is proven
// alive with a probe message on a channel of its own.
type patternSubscriber struct {
	hub    *Hub
	pubsub PubSubber
	probe  string // this hub's probe channel
}

func newPatternSubscriber(h *Hub, pubsub PubSubber) *patternSubscriber {
	return &patternSubscriber{hub: h, pubsub: pubsub, probe: h.opts.Keys.ProbeChannel(randomName())}
}

// Every room is always subscribed: nothing to do when rooms open or close.
func (*patternSubscriber) opened(string)                 {}
func (*patternSubscriber) closed(string)                 {}
func (*patternSubscriber) await(context.Context, string) {}

func (p *patternSubscriber) run(ctx context.Context) {
	h := p.hub
	backoff := newBackoff()
	for connected := false; ; {
		err := p.session(ctx, connected, backoff)
		if ctx.Err() != nil {
			return
		}
		connected = true
		h.reportHealth(fmt.Errorf("%w: %w", ErrNotReady, err))
		h.log.Warn("redis subscription lost; reconnecting", "err", err)
		if !backoff.wait(ctx) {
			return
		}
	}
}

// session runs one subscription connection until it fails or ctx ends.
// After a reconnect (resumed) it has every room checked and repaired.
func (p *patternSubscriber) session(ctx context.Context, resumed bool, backoff *backoff) error {
	h := p.hub
	ps := p.pubsub.PSubscribe(ctx, h.opts.Keys.Pattern())
	defer ps.Close()
	// A blocked receive does not watch ctx; closing the connection ends it.
	defer context.AfterFunc(ctx, func() { ps.Close() })()
	if err := p.awaitSubscribed(ctx, ps); err != nil {
		return err
	}
	h.reportHealth(nil)
	backoff.reset()
	if resumed {
		h.stats.reconnects.Add(1)
		h.log.Info("redis subscription restored; repairing rooms from history")
		h.checkRooms(ctx, nil)
	}

	var probeSent time.Time // zero while no probe is outstanding
	for {
		msg, err := ps.ReceiveTimeout(ctx, h.opts.DeliveryCheckInterval)
		switch {
		case isTimeout(err) && !probeSent.IsZero():
			return errProbeLost
		case isTimeout(err):
			if err := p.publishProbe(ctx); err != nil {
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

func (p *patternSubscriber) awaitSubscribed(ctx context.Context, ps *redis.PubSub) error {
	msg, err := ps.ReceiveTimeout(ctx, p.hub.opts.RedisTimeout)
	if err != nil {
		return fmt.Errorf("psubscribe: %w", err)
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return fmt.Errorf("psubscribe: unexpected reply %T", msg)
	}
	return nil
}

func (p *patternSubscriber) publishProbe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.hub.opts.RedisTimeout)
	defer cancel()
	if err := p.pubsub.Publish(ctx, p.probe, "probe").Err(); err != nil {
		return fmt.Errorf("publish probe: %w", err)
	}
	return nil
}
