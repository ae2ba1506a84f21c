package redisscripts

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

// read_state.lua holds the helpers that every script changing what counts
// as unread shares; it is prepended to those scripts.
//
//go:embed read_state.lua
var readStateSource string

//go:embed mark_read.lua
var markReadSource string

//go:embed read_room.lua
var readRoomSource string

var (
	markReadScript = redis.NewScript(readStateSource + markReadSource)
	readRoomScript = redis.NewScript(readStateSource + readRoomSource)
)

// MarkRead moves user's read marker in room forward to id; an older id
// leaves it where it is. When it moves, the room's streams get a read
// event (see the hub) and the room joins the user's index of rooms. It
// returns chat.ErrEmptyRoom for a room without messages and
// chat.ErrUnknownMessage for an id of another epoch or after the room's
// last message; then nothing is written.
func (s *Store) MarkRead(ctx context.Context, room, user string, id chat.ID) (chat.Mark, error) {
	roomJSON, _ := json.Marshal(room)
	userJSON, _ := json.Marshal(user)
	reply, err := markReadScript.Run(ctx, s.rdb,
		[]string{s.keys.meta(room), s.keys.read(room), s.keys.live(room), s.keys.presenceUsers(room)},
		user, id.Epoch, id.Seq, s.readReceiptsMax, s.roomChannel(room), s.publishCommand(),
		roomJSON, userJSON,
	).Int64Slice()
	if err != nil {
		return chat.Mark{}, wrapRedisError("mark read", err)
	}
	if len(reply) != 4 {
		return chat.Mark{}, fmt.Errorf("mark read: unexpected reply length %d", len(reply))
	}
	switch reply[0] {
	case 1:
		return chat.Mark{}, chat.ErrEmptyRoom
	case 2:
		return chat.Mark{}, chat.ErrUnknownMessage
	}
	mark := chat.Mark{LastRead: chat.ID{Epoch: id.Epoch, Seq: reply[1]}, Unread: reply[2], Moved: reply[3] == 1}
	if mark.Moved {
		// Every move (not only the first) adds the room to the index, so
		// that an index write lost after an earlier mark or post heals.
		if err := s.indexRoom(ctx, user, room); err != nil {
			return chat.Mark{}, err
		}
	}
	return mark, nil
}

// indexRoom adds room to the index of user's rooms. The index key is not
// in the room's slot, so this is a command of its own after the script
// that made the marker: a Redis Cluster runs a script on one slot only.
// The index may hold rooms whose marker is gone (the room expired or was
// lost); ReadStates tells them apart.
func (s *Store) indexRoom(ctx context.Context, user, room string) error {
	if err := s.rdb.ZAdd(ctx, s.keys.userRooms(user), redis.Z{Member: room}).Err(); err != nil {
		return wrapRedisError("index the user's room", err)
	}
	return nil
}

// UserRooms returns up to limit rooms of user's index in byte order, those
// after the room after ("" from the start), and whether more follow.
func (s *Store) UserRooms(ctx context.Context, user, after string, limit int) (rooms []string, more bool, err error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	rooms, err = s.rdb.ZRangeByLex(ctx, s.keys.userRooms(user), &redis.ZRangeBy{
		Min: start, Max: "+", Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, false, wrapRedisError("list the user's rooms", err)
	}
	if len(rooms) > limit {
		return rooms[:limit], true, nil
	}
	return rooms, false, nil
}

// ReadStates reads user's read state in each of rooms: one script call
// per room, all in one pipeline, so one round trip per node of a Redis
// Cluster (and one on a single Redis); each call costs O(log n) in the
// room's history length.
func (s *Store) ReadStates(ctx context.Context, user string, rooms []string) ([]chat.ReadState, error) {
	calls := make([]evalCall, len(rooms))
	for i, room := range rooms {
		calls[i] = evalCall{
			keys: []string{s.keys.meta(room), s.keys.read(room), s.keys.live(room), s.keys.history(room)},
			args: []any{user},
		}
	}
	cmds, err := evalEach(ctx, s.rdb, readRoomScript, calls)
	if err != nil {
		return nil, wrapRedisError("read the read state", err)
	}
	states := make([]chat.ReadState, len(rooms))
	for i, cmd := range cmds {
		reply, err := cmd.Slice()
		if err != nil {
			return nil, wrapRedisError("read the read state", err)
		}
		if len(reply) != 4 {
			return nil, fmt.Errorf("read the read state: unexpected reply length %d", len(reply))
		}
		st := chat.ReadState{Room: rooms[i]}
		epoch, _ := reply[0].(string)
		if marker, ok := reply[1].(string); ok && epoch != "" {
			id, err := chat.ParseID(epoch + "-" + marker)
			if err != nil {
				return nil, fmt.Errorf("read the read state of %q: marker: %w", rooms[i], err)
			}
			st.LastRead = id
		}
		st.Unread, _ = reply[2].(int64)
		if last, ok := reply[3].(string); ok {
			st.LastMessage = []byte(last)
		}
		states[i] = st
	}
	return states, nil
}

// evalCall is the KEYS and ARGV of one script call.
type evalCall struct {
	keys []string
	args []any
}

// evalEach runs script once per call in one pipeline of EVALSHAs, then the
// calls answered NOSCRIPT (a new or flushed server) in one pipeline of
// EVALs. It returns the commands, each with its own reply or error, and
// an error only when no command could be sent.
func evalEach(ctx context.Context, rdb redis.Cmdable, script *redis.Script, calls []evalCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	for attempt := range 2 {
		pipe := rdb.Pipeline()
		for i, c := range calls {
			switch {
			case attempt == 0:
				cmds[i] = script.EvalSha(ctx, pipe, c.keys, c.args...)
			case redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT"):
				cmds[i] = script.Eval(ctx, pipe, c.keys, c.args...)
			}
		}
		if pipe.Len() == 0 {
			break
		}
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
	return cmds, nil
}
