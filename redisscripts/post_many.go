package redisscripts

import (
	"context"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// PostMany stores and publishes each of posts as Post does, each in one
// atomic step in its room, and returns their results in order. The calls
// go out as one pipeline (on a Cluster, one per primary, as the client
// groups them by slot), so a batch costs a few round trips in all; calls
// to one room keep their order. Each call is sent at most once, as Post's
// are: an error wrapping chat.ErrUnavailable may hide a stored message,
// which a retry with the same IdempotencyKey finds. One post failing
// changes nothing for the others.
func (s *Store) PostMany(ctx context.Context, posts []chat.Post) []chat.PostResult {
	results := make([]chat.PostResult, len(posts))
	calls := make([]*scriptCall, 0, len(posts))
	index := make([]int, 0, len(posts)) // the post of each call
	for i, p := range posts {
		keys, args, err := s.postCall(p)
		if err != nil {
			results[i].Err = err
			continue
		}
		calls = append(calls, &scriptCall{ctx: ctx, keys: keys, args: args, done: make(chan struct{})})
		index = append(index, i)
	}
	if len(calls) > 0 {
		s.posts.send(calls)
	}
	// As Post does: a poster's first marker in a room indexes the room
	// for GET /me/rooms, here in one pipeline for the batch; a failure
	// there is healed by the user's next marker move.
	indexes := s.rdb.Pipeline()
	for j, c := range calls {
		r := &results[index[j]]
		if c.err != nil {
			r.Err = wrapRedisError("post message", c.err)
			continue
		}
		r.Posted, r.Err = postedOf(c.reply)
		if p := posts[index[j]]; r.Err == nil && firstMarker(c.reply) {
			indexes.ZAdd(ctx, s.keys.userRooms(p.User), redis.Z{Member: p.Room})
		}
	}
	if indexes.Len() > 0 {
		_, _ = indexes.Exec(ctx)
	}
	return results
}
