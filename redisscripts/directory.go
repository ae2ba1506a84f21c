package redisscripts

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

//go:embed forget_room.lua
var forgetRoomSource string

var forgetRoomScript = redis.NewScript(forgetRoomSource)

// directoryRounds bounds the reads of one directory page: a caller who may
// see few of the rooms gets a short page with a Next rather than a scan
// of every room.
const directoryRounds = 8

// directoryEntry is a room of a bucket's index.
type directoryEntry struct {
	bucket int
	room   string
	ms     int64
}

// Directory returns a page of the rooms indexed by the post script (every
// bucket's Keys.roomIndex), newest post first. It reads the buckets in a
// pipeline (on a Cluster, one per node, over every slot's bucket) a few
// times at most, each round a few rooms per bucket (see directoryChunk),
// and then
// each room of the page with a few O(log n) commands in one more pipeline:
// what it costs does not grow with the rooms' history. A room that expired
// (ROOM_TTL or its ttl) is left out and dropped from its index.
func (s *Store) Directory(ctx context.Context, q chat.DirectoryQuery) (chat.DirectoryPage, error) {
	if q.Limit <= 0 {
		return chat.DirectoryPage{}, nil
	}
	tags := s.keys.bucketTags()
	done := make([]bool, len(tags)) // buckets read to their end
	at := q.After
	var found []directoryEntry
	exhausted := false
	for round := 0; round < directoryRounds && len(found) <= q.Limit && !exhausted; round++ {
		chunk, end, err := s.directoryChunk(ctx, tags, done, at, q.Limit)
		if err != nil {
			return chat.DirectoryPage{}, err
		}
		exhausted = end
		for _, e := range chunk {
			at = chat.DirectoryCursor{MS: e.ms, Room: e.room}
			if strings.HasPrefix(e.room, q.Prefix) && (q.Visible == nil || q.Visible(e.room)) {
				found = append(found, e)
			}
		}
	}
	var page chat.DirectoryPage
	switch {
	case len(found) > q.Limit:
		found = found[:q.Limit]
		last := found[len(found)-1]
		page.Next = chat.DirectoryCursor{MS: last.ms, Room: last.room}
	case !exhausted:
		page.Next = at
	}
	rooms, err := s.directoryRooms(ctx, tags, found)
	if err != nil {
		return chat.DirectoryPage{}, err
	}
	page.Rooms = rooms
	return page, nil
}

// directoryChunk returns the next rooms after cursor of all buckets
// together, in the directory's order, at most limit of them, and whether
// no bucket has more. It marks the buckets it read to their end in done.
//
// Each bucket not yet done gives its next few rooms (limit shared among
// them, at least 2 each), so a round over 16384 slot buckets moves tens of
// thousands of entries at most, not limit times as many. A room found is
// certain to be next when no bucket cut short (one that gave as many as
// asked) can hold a room before it: every room up to the earliest last
// room of those buckets is.
func (s *Store) directoryChunk(ctx context.Context, tags []string, done []bool, after chat.DirectoryCursor, limit int) ([]directoryEntry, bool, error) {
	top := "+inf"
	if !after.IsZero() {
		top = strconv.FormatInt(after.MS, 10)
	}
	active := 0
	for _, d := range done {
		if !d {
			active++
		}
	}
	per := int64(min(limit, max((2*limit+active-1)/max(active, 1), 2)))
	// Rooms of the cursor's millisecond come before or after it by id:
	// read past all of them.
	ties := make([]int64, len(tags))
	if !after.IsZero() {
		pipe := s.rdb.Pipeline()
		counts := make([]*redis.IntCmd, len(tags))
		for i, tag := range tags {
			if !done[i] {
				counts[i] = pipe.ZCount(ctx, s.keys.roomIndex(tag), top, top)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, wrapRedisError("list rooms", err)
		}
		for i, c := range counts {
			if c != nil {
				ties[i] = c.Val()
			}
		}
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(tags))
	for i, tag := range tags {
		if !done[i] {
			cmds[i] = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.keys.roomIndex(tag), Start: top, Stop: "-inf",
				ByScore: true, Rev: true, Count: ties[i] + per})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, wrapRedisError("list rooms", err)
	}
	order := func(a, b directoryEntry) int {
		return cmp.Or(cmp.Compare(b.ms, a.ms), strings.Compare(b.room, a.room))
	}
	var all []directoryEntry
	short := make([]bool, len(tags)) // buckets that gave all they have
	var bound *directoryEntry        // the earliest last room of the buckets cut
	for i, c := range cmds {
		if c == nil {
			continue
		}
		got := c.Val()
		short[i] = int64(len(got)) < ties[i]+per
		for _, z := range got {
			e := directoryEntry{bucket: i, room: z.Member.(string), ms: int64(z.Score)}
			if !after.IsZero() && after.Before(e.ms, e.room) {
				continue
			}
			all = append(all, e)
		}
		if !short[i] && len(got) > 0 {
			last := all[len(all)-1]
			if bound == nil || order(last, *bound) < 0 {
				bound = &last
			}
		}
	}
	slices.SortFunc(all, order)
	n := len(all)
	if bound != nil {
		n, _ = slices.BinarySearchFunc(all, *bound, order)
		n++ // the bound itself is certain
	}
	n = min(n, limit)
	for _, e := range all[n:] {
		short[e.bucket] = false // to be read again
	}
	for i := range done {
		done[i] = done[i] || short[i]
	}
	return all[:n], !slices.Contains(done, false), nil
}

// directoryRooms reads what the directory shows of each room found.
func (s *Store) directoryRooms(ctx context.Context, tags []string, found []directoryEntry) ([]chat.DirectoryRoom, error) {
	if len(found) == 0 {
		return []chat.DirectoryRoom{}, nil
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	type reads struct {
		seq, title     *redis.StringCmd
		last           *redis.StringSliceCmd
		watchers, user *redis.IntCmd
	}
	pipe := s.rdb.Pipeline()
	rs := make([]reads, len(found))
	for i, e := range found {
		rs[i] = reads{
			seq:      pipe.HGet(ctx, s.keys.meta(e.room), "seq"),
			title:    pipe.HGet(ctx, s.keys.settings(e.room), settingTitle),
			last:     pipe.ZRange(ctx, s.keys.history(e.room), -1, -1),
			watchers: pipe.ZCount(ctx, s.keys.presenceEntries(e.room), "("+now, "+inf"),
			user:     pipe.ZCard(ctx, s.keys.presenceUsers(e.room)),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapRedisError("list rooms", err)
	}
	rooms := make([]chat.DirectoryRoom, 0, len(found))
	for i, e := range found {
		r := rs[i]
		seq, err := strconv.ParseInt(r.seq.Val(), 10, 64)
		last := r.last.Val()
		if err != nil || len(last) == 0 {
			// Expired: forget it, unless a post made it anew meanwhile
			// (the script checks, in the room's slot).
			keys := []string{s.keys.roomIndex(tags[e.bucket]), s.keys.meta(e.room)}
			if err := forgetRoomScript.Run(ctx, s.rdb, keys, e.room).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return nil, wrapRedisError("list rooms", err)
			}
			continue
		}
		rooms = append(rooms, chat.DirectoryRoom{Room: e.room, Title: r.title.Val(), LastActivity: time.UnixMilli(e.ms).UTC(),
			LastMessage: []byte(last[0]), Seq: seq, Watchers: r.watchers.Val(), Users: r.user.Val()})
	}
	return rooms, nil
}
