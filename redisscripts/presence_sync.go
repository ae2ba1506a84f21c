package redisscripts

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed presence_sync.lua
var presenceSyncSource string

var presenceSyncScript = redis.NewScript(presenceSyncSource)

// InstanceIDLen is the length of the instance ids of PresenceSync.
const InstanceIDLen = 16

// PresenceSync is one instance's report of its users in a room.
type PresenceSync struct {
	Instance   string        // InstanceIDLen characters, unique to the process
	Live       []string      // users with a stream of the room open on the instance
	Leaving    []string      // users whose last stream of the room on the instance just closed
	LiveTTL    time.Duration // a live user's entry lasts this long unless synced again
	LeavingTTL time.Duration // a leaving user stays present this long (the grace period)
	List       int           // present users to return, oldest first; 0 for none
}

// Presence is a room's presence after a SyncPresence.
type Presence struct {
	Time   time.Time // Redis's clock at the sync
	Joined []string  // users present since this sync, in no other instance's report
	Left   []string  // users this sync found gone: their last entry expired
	Count  int       // users present
	Users  []PresentUser
}

// PresentUser is a user present in a room since a time.
type PresentUser struct {
	User  string
	Since time.Time
}

// SyncPresence records p in room's presence, removes entries that expired
// (every instance's), and returns the room's presence. Joined and Left are
// reported to exactly one caller each, who publishes the events. A sync
// without users only sweeps and reads.
func (s *Store) SyncPresence(ctx context.Context, room string, p PresenceSync) (Presence, error) {
	if len(p.Live)+len(p.Leaving) > 0 && len(p.Instance) != InstanceIDLen {
		return Presence{}, errors.New("sync presence: instance id must be 16 characters")
	}
	args := make([]any, 0, 5+len(p.Live)+len(p.Leaving))
	args = append(args, p.Instance, p.LiveTTL.Milliseconds(), p.LeavingTTL.Milliseconds(), len(p.Live), p.List)
	for _, u := range p.Live {
		args = append(args, u)
	}
	for _, u := range p.Leaving {
		args = append(args, u)
	}
	reply, err := presenceSyncScript.Run(ctx, s.rdb,
		[]string{s.keys.presenceEntries(room), s.keys.presenceUsers(room), s.keys.presenceRefs(room)}, args...,
	).Slice()
	if err != nil {
		return Presence{}, wrapRedisError("sync presence", err)
	}
	if len(reply) != 5 {
		return Presence{}, fmt.Errorf("sync presence: unexpected reply length %d", len(reply))
	}
	now, _ := reply[0].(int64)
	count, _ := reply[3].(int64)
	out := Presence{Time: time.UnixMilli(now).UTC(), Count: int(count)}
	if out.Joined, err = stringsOf(reply[1]); err != nil {
		return Presence{}, err
	}
	if out.Left, err = stringsOf(reply[2]); err != nil {
		return Presence{}, err
	}
	listed, err := stringsOf(reply[4])
	if err != nil || len(listed)%2 != 0 {
		return Presence{}, fmt.Errorf("sync presence: unexpected user list")
	}
	for i := 0; i < len(listed); i += 2 {
		ms, err := strconv.ParseInt(listed[i+1], 10, 64)
		if err != nil {
			return Presence{}, fmt.Errorf("sync presence: since of %q: %w", listed[i], err)
		}
		out.Users = append(out.Users, PresentUser{User: listed[i], Since: time.UnixMilli(ms).UTC()})
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
