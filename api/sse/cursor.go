package sse

import (
	"roomcast/api/cursor"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// Cursor writes the id lines of one stream of several rooms: the
// composite cursor (api/cursor) of every room's position is the stream's
// one event id. Each message re-encodes only its room's entry
// (cursor.Encoder.Set). A Cursor is not safe for concurrent use: the stream
// engine calls it with the stream's lock held.
type Cursor struct {
	codec cursor.Codec
	rooms []string
	enc   *cursor.Encoder // made at the first message, from every room's position
	size  int             // of an id line
}

var _ stream.Cursor = (*Cursor)(nil)

// NewCursor returns the Cursor of a stream of rooms.
func NewCursor(codec cursor.Codec, rooms []string) *Cursor {
	return &Cursor{codec: codec, rooms: rooms}
}

// Line returns the id line of the stream's positions, pos(j) for each room
// j, after room i moved. A position that cannot be encoded (not an epoch
// of redisscripts) is an error, and the token stays as it was.
func (c *Cursor) Line(i int, pos func(j int) chat.ID) ([]byte, error) {
	if c.enc == nil {
		start := make([]chat.ID, len(c.rooms))
		for j := range c.rooms {
			start[j] = pos(j)
		}
		enc, err := c.codec.NewEncoder(c.rooms, start)
		if err != nil {
			return nil, err
		}
		c.enc = enc
		c.size = len("id: \n") + len(enc.AppendToken(nil)) // every token of an Encoder has one length
	} else if err := c.enc.Set(i, pos(i)); err != nil {
		return nil, err
	}
	line := make([]byte, 0, c.size)
	line = append(line, "id: "...)
	line = c.enc.AppendToken(line)
	return append(line, '\n'), nil
}

// Forget starts room i afresh in the token, after its reset event.
func (c *Cursor) Forget(i int) {
	if c.enc != nil {
		_ = c.enc.Set(i, chat.ID{})
	}
}
