package redisscripts

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

//go:embed read_history.lua
var readHistorySource string

var readHistoryScript = redis.NewScript(readHistorySource)

// Direction says which way a Query reads from its cursor.
type Direction int

// The directions of a Query.
const (
	Latest Direction = iota // the newest messages; no cursor
	Before                  // messages older than the cursor
	After                   // messages newer than the cursor
)

// Query asks for one page of a room's history.
type Query struct {
	Direction Direction
	Cursor    ID // ignored for Latest
	Limit     int
}

// Page is one page of history.
type Page struct {
	Messages [][]byte // ascending by sequence number, as stored
	HasMore  bool     // more messages lie beyond the page in its direction
	Reset    *Reset   // set when an After cursor could not be honoured
}

// Reset explains why a reader positioned at a cursor cannot be given every
// message after it.
type Reset struct {
	Reason         string `json:"reason"`
	Detail         string `json:"detail"`
	LastEventID    string `json:"last_event_id"`
	FirstAvailable string `json:"first_available_id,omitempty"`
}

// The reasons of a Reset.
const (
	ResetEpochChanged = "epoch_changed" // Redis lost the room's state since the cursor
	ResetTrimmed      = "trimmed"       // messages after the cursor fell out of history
)

// History reads one page of room's history. An unknown room has an empty
// history.
func (s *Store) History(ctx context.Context, room string, q Query) (Page, error) {
	mode := [...]string{Latest: "latest", Before: "before", After: "after"}[q.Direction]
	reply, err := readHistoryScript.Run(ctx, s.rdb,
		[]string{s.keys.meta(room), s.keys.history(room)},
		mode, q.Cursor.Epoch, q.Cursor.Seq, q.Limit,
	).Slice()
	if err != nil {
		return Page{}, wrapRedisError("read history", err)
	}
	if len(reply) < 4 {
		return Page{}, fmt.Errorf("read history: unexpected reply length %d", len(reply))
	}
	epoch, _ := reply[0].(string)
	last, _ := reply[1].(int64)
	oldest, _ := reply[2].(int64)
	hasMore, _ := reply[3].(int64)
	page := Page{HasMore: hasMore == 1, Messages: make([][]byte, 0, len(reply)-4)}
	for _, m := range reply[4:] {
		text, ok := m.(string)
		if !ok {
			return Page{}, fmt.Errorf("read history: unexpected message type %T", m)
		}
		page.Messages = append(page.Messages, []byte(text))
	}
	if q.Direction == After {
		page.Reset = resetFor(q.Cursor, epoch, last, oldest)
	}
	return page, nil
}

func resetFor(cursor ID, epoch string, last, oldest int64) *Reset {
	first := ""
	if epoch != "" && oldest <= last {
		first = ID{Epoch: epoch, Seq: oldest}.String()
	}
	switch {
	case cursor.Epoch != epoch || cursor.Seq > last:
		return &Reset{
			Reason:         ResetEpochChanged,
			Detail:         "the room's history was lost since this position; messages after it may be missing",
			LastEventID:    cursor.String(),
			FirstAvailable: first,
		}
	case cursor.Seq+1 < oldest:
		return &Reset{
			Reason:         ResetTrimmed,
			Detail:         fmt.Sprintf("%d messages after this position are no longer retained", oldest-cursor.Seq-1),
			LastEventID:    cursor.String(),
			FirstAvailable: first,
		}
	}
	return nil
}
