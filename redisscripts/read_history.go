package redisscripts

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
)

//go:embed read_history.lua
var readHistorySource string

var readHistoryScript = redis.NewScript(readHistorySource)

// History reads one page of room's history. An unknown room has an empty
// history. Messages come in their latest versions; an After page also
// holds the changes after its cursor (chat.EntryOf), in position order.
func (s *Store) History(ctx context.Context, room string, q chat.Query) (chat.Page, error) {
	mode := [...]string{chat.Latest: "latest", chat.Before: "before", chat.After: "after"}[q.Direction]
	reply, err := readHistoryScript.Run(ctx, s.rdb,
		[]string{s.keys.meta(room), s.keys.history(room), s.keys.log(room)},
		mode, q.Cursor.Epoch, q.Cursor.Seq, q.Limit,
	).Slice()
	if err != nil {
		return chat.Page{}, wrapRedisError("read history", err)
	}
	if len(reply) < 5 {
		return chat.Page{}, fmt.Errorf("read history: unexpected reply length %d", len(reply))
	}
	epoch, _ := reply[0].(string)
	last, _ := reply[1].(int64)
	oldest, _ := reply[2].(int64)
	hasMore, _ := reply[3].(int64)
	position, _ := reply[4].(int64)
	page := chat.Page{HasMore: hasMore == 1, Messages: make([][]byte, 0, len(reply)-5)}
	if epoch != "" && position > 0 {
		page.Position = chat.ID{Epoch: epoch, Seq: position}
	}
	for _, m := range reply[5:] {
		text, ok := m.(string)
		if !ok {
			return chat.Page{}, fmt.Errorf("read history: unexpected message type %T", m)
		}
		page.Messages = append(page.Messages, []byte(text))
	}
	if q.Direction == chat.After {
		page.Reset = resetFor(q.Cursor, epoch, last, oldest)
	}
	return page, nil
}

func resetFor(cursor chat.ID, epoch string, last, oldest int64) *chat.Reset {
	first := ""
	if epoch != "" && oldest <= last {
		first = chat.ID{Epoch: epoch, Seq: oldest}.String()
	}
	switch {
	case cursor.Epoch == epoch && cursor.Seq > last:
		// Not a position this room gave out: made up, or the room's
		// newest messages were lost (Redis restored from an older state).
		return &chat.Reset{
			Reason:         chat.ResetAhead,
			Detail:         "this position is after the room's last message; messages up to it may have been lost",
			LastEventID:    cursor.String(),
			FirstAvailable: first,
		}
	case cursor.Epoch != epoch:
		return &chat.Reset{
			Reason:         chat.ResetEpochChanged,
			Detail:         "the room's history was lost since this position; messages after it may be missing",
			LastEventID:    cursor.String(),
			FirstAvailable: first,
		}
	case cursor.Seq+1 < oldest:
		return &chat.Reset{
			Reason:         chat.ResetTrimmed,
			Detail:         fmt.Sprintf("%d messages after this position are no longer retained", oldest-cursor.Seq-1),
			LastEventID:    cursor.String(),
			FirstAvailable: first,
		}
	}
	return nil
}
