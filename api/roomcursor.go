package api

import (
	"context"
	"encoding/json"

	"roomcast/api/sse"
	"roomcast/broker"
	"roomcast/redisscripts"
	"roomcast/redisscripts/cursor"
)

// roomCursor is a multi-room stream's position in each of its rooms and
// the composite cursor naming them all, which is the id of every message
// event. It writes each room's messages after its position exactly once,
// in order, reading history to fill gaps. It knows nothing of HTTP, so that
// a stream engine can own it; it is not safe for concurrent use.
type roomCursor struct {
	store MessageStore
	rooms []string
	pos   []redisscripts.ID
	enc   *cursor.Encoder
	// onReset is called for each reset event written (for metrics).
	onReset func()
}

// newRoomCursor positions a stream at pos in rooms (same indexes).
func newRoomCursor(store MessageStore, codec cursor.Codec, rooms []string, pos []redisscripts.ID) (*roomCursor, error) {
	enc, err := codec.NewEncoder(rooms, pos)
	if err != nil {
		return nil, err
	}
	return &roomCursor{store: store, rooms: rooms, pos: pos, enc: enc, onReset: func() {}}, nil
}

// appendMessage moves room i to id and appends the message event whose id
// is the composite cursor.
func (rc *roomCursor) appendMessage(buf []byte, i int, id redisscripts.ID, data []byte) ([]byte, error) {
	if err := rc.enc.Set(i, id); err != nil {
		return buf, err
	}
	rc.pos[i] = id
	buf = append(buf, "id: "...)
	buf = rc.enc.AppendToken(buf)
	buf = append(buf, '\n')
	return sse.AppendEvent(buf, "", "message", data), nil
}

// deliver appends live message m of room i, skipping it when the client
// has it and reading history first when it does not directly follow.
func (rc *roomCursor) deliver(ctx context.Context, buf []byte, i int, m *broker.Message) ([]byte, error) {
	if m.ID.Covered(rc.pos[i]) {
		return buf, nil
	}
	if !m.ID.Follows(rc.pos[i]) {
		var err error
		if buf, err = rc.catchUp(ctx, buf, i); err != nil {
			return buf, err
		}
		if m.ID.Covered(rc.pos[i]) {
			return buf, nil
		}
	}
	return rc.appendMessage(buf, i, m.ID, m.Data)
}

// roomReset is a Reset that names its room, as multi-room streams send it.
type roomReset struct {
	Room string `json:"room"`
	*redisscripts.Reset
}

// catchUp appends every retained message of room i after its position,
// preceded by a reset event naming the room if some of them are lost.
func (rc *roomCursor) catchUp(ctx context.Context, buf []byte, i int) ([]byte, error) {
	for {
		page, err := rc.store.History(ctx, rc.rooms[i], redisscripts.Query{
			Direction: redisscripts.After, Cursor: rc.pos[i], Limit: maxLimit,
		})
		if err != nil {
			return buf, err
		}
		if page.Reset != nil {
			if rc.pos[i].Epoch != "" { // a room that never had a message lost none
				rc.onReset()
				data, _ := json.Marshal(roomReset{Room: rc.rooms[i], Reset: page.Reset})
				buf = sse.AppendEvent(buf, "", "reset", data)
			}
			rc.pos[i] = redisscripts.ID{}
			if err := rc.enc.Set(i, rc.pos[i]); err != nil {
				return buf, err
			}
		}
		for _, data := range page.Messages {
			id, err := redisscripts.IDOf(data)
			if err != nil {
				return buf, err
			}
			if id.Covered(rc.pos[i]) {
				continue
			}
			if buf, err = rc.appendMessage(buf, i, id, data); err != nil {
				return buf, err
			}
		}
		if !page.HasMore {
			return buf, nil
		}
	}
}
