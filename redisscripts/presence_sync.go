package redisscripts

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

//go:embed presence_sync.lua
var presenceSyncSource string

var presenceSyncScript = redis.NewScript(presenceSyncSource)

// SyncPresence records p in room's presence, removes entries that expired
// (every instance's), and returns the room's presence. Joined and Left are
// reported to exactly one caller each, who publishes the events. A sync
// without users only sweeps and reads.
func (s *Store) SyncPresence(ctx context.Context, room string, p chat.PresenceSync) (chat.Presence, error) {
	if len(p.Live)+len(p.Leaving) > 0 && len(p.Instance) != chat.InstanceIDLen {
		return chat.Presence{}, errors.New("sync presence: instance id must be 16 characters")
	}
	keys := []string{s.keys.presenceEntries(room), s.keys.presenceUsers(room), s.keys.presenceRefs(room)}
	webhookRoom, roomJSON := "", ""
	if s.webhooks.presence() {
		tag := s.keys.bucketTag(room)
		keys = append(keys, s.keys.webhookOutbox(room), s.keys.webhookDue(tag), s.keys.presenceRooms(tag))
		webhookRoom, roomJSON = room, string(appendJSONString(nil, room))
	}
	args := make([]any, 0, 8+len(p.Live)+len(p.Leaving))
	args = append(args, p.Instance, p.LiveTTL.Milliseconds(), p.LeavingTTL.Milliseconds(), len(p.Live), p.List,
		webhookRoom, roomJSON, s.webhooks.presenceKinds)
	for _, u := range p.Live {
		args = append(args, u)
	}
	for _, u := range p.Leaving {
		args = append(args, u)
	}
	reply, err := presenceSyncScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return chat.Presence{}, wrapRedisError("sync presence", err)
	}
	if len(reply) != 5 {
		return chat.Presence{}, fmt.Errorf("sync presence: unexpected reply length %d", len(reply))
	}
	now, _ := reply[0].(int64)
	count, _ := reply[3].(int64)
	out := chat.Presence{Time: time.UnixMilli(now).UTC(), Count: int(count)}
	if out.Joined, err = stringsOf(reply[1]); err != nil {
		return chat.Presence{}, err
	}
	if out.Left, err = stringsOf(reply[2]); err != nil {
		return chat.Presence{}, err
	}
	listed, err := stringsOf(reply[4])
	if err != nil || len(listed)%2 != 0 {
		return chat.Presence{}, fmt.Errorf("sync presence: unexpected user list")
	}
	for i := 0; i < len(listed); i += 2 {
		ms, err := strconv.ParseInt(listed[i+1], 10, 64)
		if err != nil {
			return chat.Presence{}, fmt.Errorf("sync presence: since of %q: %w", listed[i], err)
		}
		out.Users = append(out.Users, chat.PresentUser{User: listed[i], Since: time.UnixMilli(ms).UTC()})
	}
	return out, nil
}

func stringsOf(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("sync presence: unexpected reply type %T", v)
	}
	out := make([]string, len(list))
	for i, x := range list {
		if out[i], ok = x.(string); !ok {
			return nil, fmt.Errorf("sync presence: unexpected element type %T", x)
		}
	}
	return out, nil
}

// DuePresenceRooms returns up to limit rooms whose first presence entry
// has expired: rooms an instance left without a word (killed), which no
// live instance may watch and so sweep. Kept only with presence webhooks
// on; nil otherwise. On a Cluster it reads every slot's bucket in one
// pipeline per node.
func (s *Store) DuePresenceRooms(ctx context.Context, limit int) ([]string, error) {
	if !s.webhooks.presence() {
		return nil, nil
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	tags := s.keys.bucketTags()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(tags))
	for i, tag := range tags {
		cmds[i] = pipe.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.keys.presenceRooms(tag), Start: "-inf", Stop: now,
			ByScore: true, Count: int64(limit)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapRedisError("due presence rooms", err)
	}
	var rooms []string
	for _, c := range cmds {
		rooms = append(rooms, c.Val()...)
		if len(rooms) >= limit {
			return rooms[:limit], nil
		}
	}
	return rooms, nil
}
