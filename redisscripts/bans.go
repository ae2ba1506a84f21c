package redisscripts

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

var (
	//go:embed set_ban.lua
	setBanSource string
	//go:embed lift_ban.lua
	liftBanSource string
	//go:embed revoke.lua
	revokeSource string

	setBanScript  = redis.NewScript(setBanSource)
	liftBanScript = redis.NewScript(liftBanSource)
	revokeScript  = redis.NewScript(revokeSource)
)

func (s *Store) banKeys(room string) []string {
	return []string{s.keys.bans(room), s.keys.banEnds(room), s.keys.bannedRooms(s.keys.bucketTag(room))}
}

// SetBan stores b (replacing the user's earlier ban in the room) and
// announces it on the control channel, in one script. It reports whether
// the ban is new: false when it replaced one in force.
func (s *Store) SetBan(ctx context.Context, b chat.Ban) (created bool, err error) {
	record, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("set ban: %w", err)
	}
	message, err := json.Marshal(chat.Control{Op: chat.ControlBan, Ban: &b})
	if err != nil {
		return false, fmt.Errorf("set ban: %w", err)
	}
	ends := "+inf"
	if b.Until != nil {
		ends = strconv.FormatInt(b.Until.UnixMilli(), 10)
	}
	n, err := setBanScript.Run(ctx, s.rdb, s.banKeys(b.Room),
		b.Room, b.User, record, ends, time.Now().UnixMilli(), s.keys.ControlChannel(), message).Int64()
	if err != nil {
		return false, wrapRedisError("set ban", err)
	}
	return n == 1, nil
}

// LiftBan removes user's ban in room and announces it on the control
// channel. It returns chat.ErrNoBan, and announces nothing, when the
// user has no ban there in force.
func (s *Store) LiftBan(ctx context.Context, room, user string) error {
	message, err := json.Marshal(chat.Control{Op: chat.ControlLift, Ban: &chat.Ban{Room: room, User: user}})
	if err != nil {
		return fmt.Errorf("lift ban: %w", err)
	}
	n, err := liftBanScript.Run(ctx, s.rdb, s.banKeys(room),
		room, user, time.Now().UnixMilli(), s.keys.ControlChannel(), message).Int64()
	if err != nil {
		return wrapRedisError("lift ban", err)
	}
	if n == 0 {
		return chat.ErrNoBan
	}
	return nil
}

// Bans returns room's bans in force, oldest first.
func (s *Store) Bans(ctx context.Context, room string) ([]chat.Ban, error) {
	records, err := s.rdb.HGetAll(ctx, s.keys.bans(room)).Result()
	if err != nil {
		return nil, wrapRedisError("read bans", err)
	}
	return activeBans(records, time.Now())
}

// AllBans returns every ban in force of the deployment: on a Cluster it
// reads every slot's bucket in one pipeline per node, then the rooms
// found.
func (s *Store) AllBans(ctx context.Context) ([]chat.Ban, error) {
	tags := s.keys.bucketTags()
	pipe := s.rdb.Pipeline()
	members := make([]*redis.StringSliceCmd, len(tags))
	for i, tag := range tags {
		members[i] = pipe.SMembers(ctx, s.keys.bannedRooms(tag))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrapRedisError("read banned rooms", err)
	}
	var rooms []string
	for _, m := range members {
		rooms = append(rooms, m.Val()...)
	}
	if len(rooms) == 0 {
		return nil, nil
	}
	pipe = s.rdb.Pipeline()
	records := make([]*redis.MapStringStringCmd, len(rooms))
	for i, room := range rooms {
		records[i] = pipe.HGetAll(ctx, s.keys.bans(room))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrapRedisError("read bans", err)
	}
	now := time.Now()
	var all []chat.Ban
	for _, r := range records {
		bans, err := activeBans(r.Val(), now)
		if err != nil {
			return nil, err
		}
		all = append(all, bans...)
	}
	return all, nil
}

func activeBans(records map[string]string, now time.Time) ([]chat.Ban, error) {
	bans := make([]chat.Ban, 0, len(records))
	for user, record := range records {
		var b chat.Ban
		if err := json.Unmarshal([]byte(record), &b); err != nil {
			return nil, fmt.Errorf("ban of %q: %w", user, err)
		}
		if b.ActiveAt(now) {
			bans = append(bans, b)
		}
	}
	slices.SortFunc(bans, func(a, b chat.Ban) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.User, b.User))
	})
	return bans, nil
}

// Revoke records r until r.Expires and announces it on the control
// channel, in one script. Revoking again what is already revoked keeps
// the later expiry.
func (s *Store) Revoke(ctx context.Context, r chat.Revocation) error {
	message, err := json.Marshal(chat.Control{Op: chat.ControlRevoke, Revocation: &r})
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	err = revokeScript.Run(ctx, s.rdb, []string{s.keys.revocations()},
		revocationMember(r), r.Expires.UnixMilli(), time.Now().UnixMilli(), s.keys.ControlChannel(), message).Err()
	if err != nil {
		return wrapRedisError("revoke", err)
	}
	return nil
}

// Revocations returns the deployment's revocations that have not expired.
func (s *Store) Revocations(ctx context.Context) ([]chat.Revocation, error) {
	entries, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.keys.revocations(),
		Start: "(" + strconv.FormatInt(time.Now().UnixMilli(), 10), Stop: "+inf", ByScore: true}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapRedisError("read revocations", err)
	}
	out := make([]chat.Revocation, 0, len(entries))
	for _, e := range entries {
		member, _ := e.Member.(string)
		r, ok := parseRevocationMember(member)
		if !ok {
			return nil, fmt.Errorf("read revocations: unexpected member %q", member)
		}
		r.Expires = time.UnixMilli(int64(e.Score)).UTC()
		out = append(out, r)
	}
	return out, nil
}

// revocationMember is r's member of Keys.revocations: one per jti, one
// per user and issued_before.
func revocationMember(r chat.Revocation) string {
	if r.JTI != "" {
		return "jti:" + r.JTI
	}
	return "user:" + strconv.FormatInt(r.IssuedBefore.UnixMilli(), 10) + ":" + r.User
}

func parseRevocationMember(m string) (chat.Revocation, bool) {
	if jti, ok := strings.CutPrefix(m, "jti:"); ok {
		return chat.Revocation{JTI: jti}, jti != ""
	}
	rest, ok := strings.CutPrefix(m, "user:")
	ms, user, ok2 := strings.Cut(rest, ":")
	before, err := strconv.ParseInt(ms, 10, 64)
	if !ok || !ok2 || err != nil || user == "" {
		return chat.Revocation{}, false
	}
	return chat.Revocation{User: user, IssuedBefore: time.UnixMilli(before).UTC()}, true
}
