package redisscripts

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// Positions returns the id of each room's newest message, in one pipelined
// round trip. A room that has none yet, or that Redis does not know, has
// the zero ID.
func (s *Store) Positions(ctx context.Context, rooms []string) ([]chat.ID, error) {
	cmds := make([]*redis.SliceCmd, len(rooms))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, room := range rooms {
			cmds[i] = p.HMGet(ctx, s.keys.meta(room), "epoch", "seq")
		}
		return nil
	})
	if err != nil {
		return nil, wrapRedisError("read positions", err)
	}
	ids := make([]chat.ID, len(rooms))
	for i, cmd := range cmds {
		var meta struct {
			Epoch string `redis:"epoch"`
			Seq   int64  `redis:"seq"`
		}
		if err := cmd.Scan(&meta); err != nil {
			return nil, fmt.Errorf("read positions: %w", err)
		}
		ids[i] = chat.ID{Epoch: meta.Epoch, Seq: meta.Seq}
	}
	return ids, nil
}
