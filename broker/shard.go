package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// shard is one SSUBSCRIBE connection to one Redis Cluster shard: the node
// that masters its slots.
type shard struct {
	addr   string
	node   *redis.Client
	ps     *redis.PubSub
	probe  string
	rooms  map[string]struct{} // subscribed or being subscribed here
	unsubs map[string]int      // SUNSUBSCRIBE replies still due, by channel
	gone   bool
	cancel context.CancelFunc
}

// errSlotMoved is a shard's unasked sunsubscribe of its probe channel.
var errSlotMoved = errors.New("probe channel's slot left the node")

// startShard picks a probe channel on the shard, subscribes it, and starts
// reading the connection.
func (s *shardSubscriber) startShard(ctx context.Context, sh *shard) error {
	for i := 0; sh.probe == ""; i++ {
		name := s.keys.ShardProbeChannel(fmt.Sprintf("%s-%d", s.id, i))
		node, err := s.nodeFor(ctx, name)
		if err != nil {
			return fmt.Errorf("route probe: %w", err)
		}
		if node.Options().Addr == sh.addr {
			sh.probe = name
		} else if i > 10_000 {
			return errors.New("no probe channel found for the shard")
		}
	}
	if err := sh.ps.SSubscribe(ctx, sh.probe); err != nil {
		return fmt.Errorf("ssubscribe probe: %w", err)
	}
	ctx, sh.cancel = context.WithCancel(ctx)
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		err := s.read(ctx, sh)
		if ctx.Err() == nil {
			s.shardFailed(sh, err)
		}
	}()
	return nil
}

// read receives from one shard until its connection fails, goes deaf, or
// the shard is closed.
func (s *shardSubscriber) read(ctx context.Context, sh *shard) error {
	var probeSent time.Time
	for {
		msg, err := sh.ps.ReceiveTimeout(ctx, s.check)
		switch {
		case isTimeout(err) && !probeSent.IsZero():
			return errProbeLost
		case isTimeout(err):
			pctx, cancel := context.WithTimeout(ctx, s.timeout)
			err := sh.node.SPublish(pctx, sh.probe, "probe").Err()
			cancel()
			if err != nil {
				return fmt.Errorf("publish probe: %w", err)
			}
			probeSent = time.Now()
			continue
		case err != nil:
			return err
		}
		probeSent = time.Time{}
		switch m := msg.(type) {
		case *redis.Message:
			s.hub.Receive(ctx, m.Channel, m.Payload)
		case *redis.Subscription:
			if err := s.subscriptionEvent(sh, m); err != nil {
				return err
			}
		}
	}
}

// subscriptionEvent handles a confirmation, and a sunsubscribe that Redis
// sends unasked when a slot leaves the node: the room is routed again.
func (s *shardSubscriber) subscriptionEvent(sh *shard, m *redis.Subscription) error {
	room, isRoom := s.keys.RoomFromChannel(m.Channel)
	s.mu.Lock()
	defer s.poke()
	defer s.mu.Unlock()
	switch m.Kind {
	case "ssubscribe":
		r := s.rooms[room]
		if !isRoom || r == nil || r.shard != sh || r.isOn {
			return nil
		}
		r.isOn = true
		close(r.confirmed)
		if r.lost {
			r.lost = false
			s.lost--
		}
		if r.recheck {
			r.recheck = false
			s.recheck = append(s.recheck, room)
		}
		s.backoff.reset()
	case "sunsubscribe":
		if sh.unsubs[m.Channel] > 0 {
			if sh.unsubs[m.Channel]--; sh.unsubs[m.Channel] == 0 {
				delete(sh.unsubs, m.Channel)
			}
			return nil
		}
		if m.Channel == sh.probe {
			return errSlotMoved
		}
		r := s.rooms[room]
		if !isRoom || r == nil || r.shard != sh {
			return nil
		}
		delete(sh.rooms, room)
		s.unsubscribedLocked(r, fmt.Errorf("shard %s: the room's slot moved", sh.addr))
		s.router.Refresh(context.Background())
	}
	return nil
}

// unsubscribedLocked notes that r lost its subscription; a wanted room is
// routed again and repaired once subscribed.
func (s *shardSubscriber) unsubscribedLocked(r *shardRoom, why error) {
	r.shard = nil
	if !r.wanted {
		delete(s.rooms, r.name)
		return
	}
	s.dirty[r.name] = struct{}{}
	if r.isOn {
		r.isOn = false
		r.confirmed = make(chan struct{})
		r.lost = true
		s.lost++
		s.lastErr = why
	}
	r.recheck = true
}

// shardFailed drops a shard's connection and routes its rooms again.
func (s *shardSubscriber) shardFailed(sh *shard, err error) {
	s.mu.Lock()
	if sh.gone {
		s.mu.Unlock()
		return
	}
	sh.gone = true
	if s.shards[sh.addr] == sh {
		delete(s.shards, sh.addr)
	}
	why := fmt.Errorf("shard %s: %w", sh.addr, err)
	for name := range sh.rooms {
		if r := s.rooms[name]; r != nil && r.shard == sh {
			s.unsubscribedLocked(r, why)
		}
	}
	s.mu.Unlock()
	s.log.Warn("sharded subscription lost; subscribing its rooms again", "shard", sh.addr, "err", err)
	sh.close()
	s.router.Refresh(context.Background())
	s.reportHealth()
	s.poke()
}

func (sh *shard) close() {
	if sh.cancel != nil {
		sh.cancel()
	}
	_ = sh.ps.Close()
}
