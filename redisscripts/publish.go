package redisscripts

import "context"

// roomChannel is the channel room's messages are published on in the
// store's broker mode.
func (s *Store) roomChannel(room string) string {
	if s.sharded {
		return s.keys.ShardChannel(room)
	}
	return s.keys.Channel(room)
}

func (s *Store) publishCommand() string {
	if s.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// PublishRoom publishes payload on room's channel: PUBLISH on Keys.Channel,
// or SPUBLISH on Keys.ShardChannel when the store is Sharded. It is the one
// way besides Post to publish to a room, so that every room publish follows
// the broker mode. Payloads that are not stored messages (ephemeral room
// events) must start with '!', which no message JSON does; the store does
// not check it. It reports how many subscriptions received the payload (in
// sharded mode: on the room's shard only).
func (s *Store) PublishRoom(ctx context.Context, room, payload string) (int64, error) {
	publish := s.rdb.Publish
	if s.sharded {
		publish = s.rdb.SPublish
	}
	n, err := publish(ctx, s.roomChannel(room), payload).Result()
	if err != nil {
		return 0, wrapRedisError("publish to room", err)
	}
	return n, nil
}
