package redisscripts

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Position returns the id of room's newest message. A room that has none
// yet, or that Redis does not know, has the zero ID.
func (s *Store) Position(ctx context.Context, room string) (ID, error) {
	ids, err := s.Positions(ctx, []string{room})
	if err != nil {
		return ID{}, err
	}
	return ids[0], nil
}

// Positions returns the Position of every room, in one pipelined round trip.
func (s *Store) Positions(ctx context.Context, rooms []string) ([]ID, error) {
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
	ids := make([]ID, len(rooms))
	for i, cmd := range cmds {
		var meta struct {
			Epoch string `redis:"epoch"`
			Seq   int64  `redis:"seq"`
		}
		if err := cmd.Scan(&meta); err != nil {
			return nil, fmt.Errorf("read positions: %w", err)
		}
		ids[i] = ID{Epoch: meta.Epoch, Seq: meta.Seq}
	}
	return ids, nil
}
