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
	//go:embed webhook_claim.lua
	webhookClaimSource string
	//go:embed webhook_fail.lua
	webhookFailSource string
	//go:embed webhook_revive.lua
	webhookReviveSource string

	webhookClaimScript  = redis.NewScript(webhookClaimSource)
	webhookFailScript   = redis.NewScript(webhookFailSource)
	webhookReviveScript = redis.NewScript(webhookReviveSource)
)

// deadMax bounds the dead letters kept per bucket; the oldest go first.
const deadMax = 10_000

// webhookEvents is which events the scripts put in outboxes.
type webhookEvents struct {
	messages         bool   // message.created
	edited, deleted  bool   // message.edited, message.deleted
	joined, left     bool   // member.joined, member.left
	occupied, vacant bool   // room.occupied, room.vacated
	presenceKinds    string // the presence types wanted, as presence_sync.lua reads them
}

func newWebhookEvents(types []string) webhookEvents {
	w := webhookEvents{
		messages: slices.Contains(types, chat.EventMessageCreated),
		edited:   slices.Contains(types, chat.EventMessageEdited),
		deleted:  slices.Contains(types, chat.EventMessageDeleted),
		joined:   slices.Contains(types, chat.EventMemberJoined),
		left:     slices.Contains(types, chat.EventMemberLeft),
		occupied: slices.Contains(types, chat.EventRoomOccupied),
		vacant:   slices.Contains(types, chat.EventRoomVacated),
	}
	for kind, on := range map[string]bool{"j": w.joined, "l": w.left, "o": w.occupied, "v": w.vacant} {
		if on {
			w.presenceKinds += kind
		}
	}
	return w
}

// presence reports whether presence changes make events.
func (w webhookEvents) presence() bool { return w.joined || w.left || w.occupied || w.vacant }

// DueRooms returns up to limit rooms whose webhook delivery is due: new
// events, an expired lease (its holder died), or a retry whose time came.
// On a Cluster it reads every slot's bucket in one pipeline per node.
func (s *Store) DueRooms(ctx context.Context, limit int) ([]string, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	tags := s.keys.bucketTags()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(tags))
	for i, tag := range tags {
		cmds[i] = pipe.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.keys.webhookDue(tag), Start: "-inf", Stop: now,
			ByScore: true, Count: int64(limit)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrapRedisError("due webhook rooms", err)
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

func (s *Store) outboxKeys(room string) []string {
	return []string{s.keys.webhookDue(s.keys.bucketTag(room)), s.keys.webhookOutbox(room),
		s.keys.webhookLease(room), s.keys.webhookTries(room)}
}

// ClaimOutbox takes or renews the lease of token on room's outbox for
// lease, after removing the events delivered (answered 2xx), and returns
// up to count of the oldest events (count 0: renew only). Held is false
// when another instance holds the room, its retry is not due yet, or
// nothing is pending; the caller then leaves the room alone.
func (s *Store) ClaimOutbox(ctx context.Context, room, token string, lease time.Duration, delivered []string, count int) (chat.OutboxBatch, error) {
	args := make([]any, 0, 4+len(delivered))
	args = append(args, room, token, lease.Milliseconds(), count)
	for _, e := range delivered {
		args = append(args, e)
	}
	raw, err := s.claims.run(ctx, s.outboxKeys(room), args...)
	if err != nil {
		return chat.OutboxBatch{}, wrapRedisError("claim webhook outbox", err)
	}
	reply, ok := raw.([]any)
	if !ok || len(reply) != 3 {
		return chat.OutboxBatch{}, fmt.Errorf("claim webhook outbox: unexpected reply %v", raw)
	}
	held, _ := reply[0].(int64)
	attempts, _ := reply[1].(int64)
	entries, _ := reply[2].([]any)
	batch := chat.OutboxBatch{Held: held == 1, Attempts: int(attempts)}
	for _, e := range entries {
		ev, err := outboxEventOf(room, e)
		if err != nil {
			return chat.OutboxBatch{}, fmt.Errorf("claim webhook outbox: %w", err)
		}
		batch.Events = append(batch.Events, ev)
	}
	return batch, nil
}

// outboxEventOf reads one XRANGE entry {id, {field, value, ...}}.
func outboxEventOf(room string, raw any) (chat.OutboxEvent, error) {
	pair, ok := raw.([]any)
	if !ok || len(pair) != 2 {
		return chat.OutboxEvent{}, fmt.Errorf("unexpected entry %v", raw)
	}
	entry, _ := pair[0].(string)
	kv, _ := pair[1].([]any)
	ms, _, _ := strings.Cut(entry, "-")
	at, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return chat.OutboxEvent{}, fmt.Errorf("entry id %q: %w", entry, err)
	}
	ev := chat.OutboxEvent{Entry: entry, ID: chat.WebhookID(room, entry)}
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		v, _ := kv[i+1].(string)
		switch k {
		case "type":
			ev.Type = v
		case "data":
			ev.Data = []byte(v)
		case "id": // a dead letter sent again keeps its id and time
			ev.ID = v
		case "ts":
			if at, err = strconv.ParseInt(v, 10, 64); err != nil {
				return chat.OutboxEvent{}, fmt.Errorf("entry %s: ts %q: %w", entry, v, err)
			}
		}
	}
	ev.Time = time.UnixMilli(at).UTC()
	if ev.Type == "" || len(ev.Data) == 0 {
		return chat.OutboxEvent{}, fmt.Errorf("entry %s lacks type or data", entry)
	}
	return ev, nil
}

// FailOutbox records f and releases token's lease on room until the next
// attempt, or moves the event to the dead letters once it is MaxAge old.
func (s *Store) FailOutbox(ctx context.Context, room, token string, f chat.OutboxFailure) (chat.FailOutcome, error) {
	tag := s.keys.bucketTag(room)
	keys := append(s.outboxKeys(room), s.keys.webhookDead(tag), s.keys.webhookDeadOrder(tag))
	args := make([]any, 0, 11+len(f.Delivered))
	args = append(args, room, token, f.Event.Entry, f.Event.ID, truncate(f.Error, 500), f.Backoff.Milliseconds(),
		f.MaxDelay.Milliseconds(), strconv.FormatFloat(f.Jitter, 'f', 6, 64), f.MaxAge.Milliseconds(), deadMax, f.Status)
	for _, e := range f.Delivered {
		args = append(args, e)
	}
	reply, err := webhookFailScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return chat.FailOutcome{}, wrapRedisError("record webhook failure", err)
	}
	if len(reply) != 3 {
		return chat.FailOutcome{}, fmt.Errorf("record webhook failure: unexpected reply length %d", len(reply))
	}
	return chat.FailOutcome{Held: reply[0] != 0, Dead: reply[0] == 2, Attempts: int(reply[1]),
		Retry: time.Duration(reply[2]) * time.Millisecond}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// deadLetter is a dead letter as webhook_fail.lua stores it.
type deadLetter struct {
	ID          string          `json:"id"`
	Room        string          `json:"room"`
	Type        string          `json:"type"`
	TimestampMS int64           `json:"timestamp_ms"`
	Attempts    int             `json:"attempts"`
	LastError   string          `json:"last_error"`
	LastStatus  int             `json:"last_status"`
	DeadAtMS    int64           `json:"dead_at_ms"`
	Data        json.RawMessage `json:"data"`
}

func deadEventOf(raw string) (chat.DeadEvent, error) {
	var l deadLetter
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return chat.DeadEvent{}, err
	}
	return chat.DeadEvent{ID: l.ID, Room: l.Room, Type: l.Type,
		Timestamp: time.UnixMilli(l.TimestampMS).UTC(), Attempts: l.Attempts, LastError: l.LastError,
		LastStatus: l.LastStatus, DeadAt: time.UnixMilli(l.DeadAtMS).UTC(), Data: l.Data}, nil
}

// DeadEvents returns up to limit dead letters after cursor (a DeadPage's
// Next; "" for the first page), in the order they died, ties in byte order
// of their ids. On a Cluster it reads every slot's bucket in a pipeline
// per node, twice when paging on.
func (s *Store) DeadEvents(ctx context.Context, cursor string, limit int) (chat.DeadPage, error) {
	if limit <= 0 {
		return chat.DeadPage{}, nil
	}
	var afterMS int64
	var afterID string
	paged := cursor != ""
	if paged {
		var ok bool
		if afterMS, afterID, ok = chat.ParseDeadCursor(cursor); !ok {
			return chat.DeadPage{}, fmt.Errorf("list dead webhooks: bad cursor %q", cursor)
		}
	}
	tags := s.keys.bucketTags()
	// Letters that died in the cursor's millisecond come before it or
	// after it by id: read past all of them.
	ties := make([]int64, len(tags))
	from := "-inf"
	if paged {
		from = strconv.FormatInt(afterMS, 10)
		pipe := s.rdb.Pipeline()
		counts := make([]*redis.IntCmd, len(tags))
		for i, tag := range tags {
			counts[i] = pipe.ZCount(ctx, s.keys.webhookDeadOrder(tag), from, from)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return chat.DeadPage{}, wrapRedisError("list dead webhooks", err)
		}
		for i, c := range counts {
			ties[i] = c.Val()
		}
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(tags))
	for i, tag := range tags {
		cmds[i] = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.keys.webhookDeadOrder(tag), Start: from, Stop: "+inf",
			ByScore: true, Count: ties[i] + int64(limit) + 1})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return chat.DeadPage{}, wrapRedisError("list dead webhooks", err)
	}
	type found struct {
		tag, id string
		at      int64
	}
	var all []found
	for i, c := range cmds {
		for _, z := range c.Val() {
			f := found{tag: tags[i], id: z.Member.(string), at: int64(z.Score)}
			if paged && f.at == afterMS && f.id <= afterID {
				continue
			}
			all = append(all, f)
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.at, b.at), strings.Compare(a.id, b.id))
	})
	more := len(all) > limit
	all = all[:min(len(all), limit)]
	var page chat.DeadPage
	if len(all) == 0 {
		return page, nil
	}
	pipe = s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(all))
	for i, f := range all {
		gets[i] = pipe.HGet(ctx, s.keys.webhookDead(f.tag), f.id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return chat.DeadPage{}, wrapRedisError("list dead webhooks", err)
	}
	page.Events = make([]chat.DeadEvent, 0, len(all))
	for _, g := range gets {
		raw, err := g.Result()
		if errors.Is(err, redis.Nil) {
			continue // sent again meanwhile
		}
		ev, err := deadEventOf(raw)
		if err != nil {
			return chat.DeadPage{}, fmt.Errorf("list dead webhooks: %w", err)
		}
		page.Events = append(page.Events, ev)
	}
	if more {
		last := all[len(all)-1]
		page.Next = chat.DeadCursor(time.UnixMilli(last.at), last.id)
	}
	return page, nil
}

// ErrNoDeadEvent is returned by ReviveDead for an id that is not a dead
// letter.
var ErrNoDeadEvent = chat.ErrNoDeadEvent

// ReviveDead moves the dead letter id back to the end of its room's
// outbox, with its webhook id and event time, to be sent again after the
// events pending there, and returns it as it was; atomically, in the
// room's slot.
func (s *Store) ReviveDead(ctx context.Context, id string) (chat.DeadEvent, error) {
	room, ok := chat.RoomOfWebhookID(id)
	if !ok {
		return chat.DeadEvent{}, ErrNoDeadEvent
	}
	tag := s.keys.bucketTag(room)
	raw, err := webhookReviveScript.Run(ctx, s.rdb, []string{s.keys.webhookDead(tag), s.keys.webhookDeadOrder(tag),
		s.keys.webhookOutbox(room), s.keys.webhookDue(tag)}, id, room).Text()
	if errors.Is(err, redis.Nil) {
		return chat.DeadEvent{}, ErrNoDeadEvent
	}
	if err != nil {
		return chat.DeadEvent{}, wrapRedisError("revive dead webhook", err)
	}
	ev, err := deadEventOf(raw)
	if err != nil {
		return chat.DeadEvent{}, fmt.Errorf("revive dead webhook: %w", err)
	}
	return ev, nil
}

// OutboxStats reads the queue's figures, looking at up to maxRooms rooms
// per bucket for the events' count and age.
func (s *Store) OutboxStats(ctx context.Context, maxRooms int) (chat.OutboxStats, error) {
	tags := s.keys.bucketTags()
	pipe := s.rdb.Pipeline()
	rooms := make([]*redis.StringSliceCmd, len(tags))
	counts := make([]*redis.IntCmd, 0, 2*len(tags))
	for i, tag := range tags {
		rooms[i] = pipe.ZRange(ctx, s.keys.webhookDue(tag), 0, int64(maxRooms)-1)
		counts = append(counts, pipe.ZCard(ctx, s.keys.webhookDue(tag)), pipe.ZCard(ctx, s.keys.webhookDeadOrder(tag)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return chat.OutboxStats{}, wrapRedisError("webhook stats", err)
	}
	var st chat.OutboxStats
	for i := 0; i < len(counts); i += 2 {
		st.Rooms += int(counts[i].Val())
		st.Dead += int(counts[i+1].Val())
	}
	pipe = s.rdb.Pipeline()
	type roomCmds struct {
		n     *redis.IntCmd
		first *redis.XMessageSliceCmd
	}
	var per []roomCmds
	for _, c := range rooms {
		for _, room := range c.Val() {
			per = append(per, roomCmds{pipe.XLen(ctx, s.keys.webhookOutbox(room)),
				pipe.XRangeN(ctx, s.keys.webhookOutbox(room), "-", "+", 1)})
		}
	}
	if len(per) == 0 {
		return st, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return chat.OutboxStats{}, wrapRedisError("webhook stats", err)
	}
	now := time.Now()
	for _, p := range per {
		st.Pending += int(p.n.Val())
		if first := p.first.Val(); len(first) == 1 {
			ms, _, _ := strings.Cut(first[0].ID, "-")
			if at, err := strconv.ParseInt(ms, 10, 64); err == nil {
				st.Oldest = max(st.Oldest, now.Sub(time.UnixMilli(at)))
			}
		}
	}
	return st, nil
}
