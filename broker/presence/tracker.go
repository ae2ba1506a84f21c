// Package presence tracks who watches each room, across instances. A
// Tracker counts this process's streams per room and user, and reports the
// users to Redis once per room and heartbeat, so that Redis work grows with
// instances × rooms that have local listeners, not with streams. It
// publishes a join when a user's first stream of a room opens anywhere and a
// leave when their last one has been closed for the grace period.
package presence

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"roomcast/broker/chat"
)

// Store is the Redis side of presence.
type Store interface {
	SyncPresence(ctx context.Context, room string, p chat.PresenceSync) (chat.Presence, error)
	PublishEvent(ctx context.Context, room, name string, data []byte) error
	// DuePresenceRooms lists rooms with expired entries (their instance
	// died), up to limit; nil when nothing needs the sweep (no presence
	// webhooks).
	DuePresenceRooms(ctx context.Context, limit int) ([]string, error)
}

// Options configure a Tracker. Fields named after a setting take its value
// (the environment variable of the same name).
type Options struct {
	Store Store
	// PresenceGrace is how long a user whose last stream closed stays
	// present: a reconnection within it is neither a leave nor a join.
	PresenceGrace time.Duration
	// PresenceInterval is the heartbeat: how often each room with local
	// listeners is reported and swept. A crashed instance's users are gone
	// within PresenceGrace + PresenceInterval, and their leave is
	// published by the next sweep: of a room with local listeners, or,
	// with presence webhooks on, of any room whose entries expired, so
	// within PresenceGrace + 2 × PresenceInterval.
	PresenceInterval time.Duration
	// PresenceMaxUsers bounds the users Read lists.
	PresenceMaxUsers int
	// RedisTimeout bounds each Redis call.
	RedisTimeout time.Duration
	Logger       *slog.Logger
}

// Tracker is one process's view of presence. Enter may be called before
// Run starts and after it ends; while Run is not running nothing reaches
// Redis.
type Tracker struct {
	opts     Options
	log      *slog.Logger
	instance string

	mu    sync.Mutex
	rooms map[string]*room
	dirty map[string]struct{} // rooms with a change not yet reported
	kick  chan struct{}
}

// room counts a room's local streams per user.
type room struct {
	live    map[string]int      // user -> open local streams
	leaving map[string]struct{} // users whose last local stream closed since the last report
	unnamed int                 // open local streams without a user: they see events, are not listed
	// sweepUntil keeps a room without local streams reported until the
	// leaves that its last reports started are published.
	sweepUntil time.Time
}

func newRoom() *room {
	return &room{live: make(map[string]int), leaving: make(map[string]struct{})}
}

func (r *room) idle(now time.Time) bool {
	return len(r.live) == 0 && len(r.leaving) == 0 && r.unnamed == 0 && now.After(r.sweepUntil)
}

// New returns a Tracker with a fresh instance id.
func New(opts Options) *Tracker {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	id := make([]byte, chat.InstanceIDLen/2)
	_, _ = cryptorand.Read(id)
	return &Tracker{
		opts: opts, log: opts.Logger, instance: hex.EncodeToString(id),
		rooms: make(map[string]*room), dirty: make(map[string]struct{}), kick: make(chan struct{}, 1),
	}
}

// Enter counts a stream of user in room and returns the function to call,
// once, when that stream closes. A user's first local stream of a room is
// reported at once (a join, unless they are present elsewhere or within
// the grace period); closing the last one starts the grace period. A
// stream without a user ("") is not listed, but keeps the room swept so
// that it gets the leaves of others. Enter never blocks on Redis.
func (t *Tracker) Enter(roomName, user string) (leave func()) {
	t.mu.Lock()
	r := t.rooms[roomName]
	if r == nil {
		r = newRoom()
		t.rooms[roomName] = r
	}
	if user == "" {
		r.unnamed++
		t.mu.Unlock()
		return sync.OnceFunc(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			r.unnamed--
		})
	}
	r.live[user]++
	first := r.live[user] == 1
	if first {
		delete(r.leaving, user)
		t.dirty[roomName] = struct{}{}
	}
	t.mu.Unlock()
	if first {
		t.wake()
	}
	return sync.OnceFunc(func() {
		t.mu.Lock()
		r.live[user]--
		last := r.live[user] == 0
		if last {
			delete(r.live, user)
			r.leaving[user] = struct{}{}
			t.dirty[roomName] = struct{}{}
		}
		t.mu.Unlock()
		if last {
			t.wake()
		}
	})
}

func (t *Tracker) wake() {
	select {
	case t.kick <- struct{}{}:
	default: // a report is already due
	}
}

// Read returns room's presence (at most PresenceMaxUsers listed), sweeping
// expired entries first and publishing the leaves that the sweep finds.
func (t *Tracker) Read(ctx context.Context, roomName string) (chat.Presence, error) {
	p, err := t.opts.Store.SyncPresence(ctx, roomName, chat.PresenceSync{List: t.opts.PresenceMaxUsers})
	if err != nil {
		return p, err
	}
	t.publish(ctx, roomName, p)
	return p, nil
}

// Run reports changes as they happen and every room with local streams
// each PresenceInterval, until ctx ends, and returns nil. It reports
// nothing at the end: this instance's entries then expire within
// PresenceInterval + PresenceGrace as a crashed instance's do, which is at
// least PresenceGrace after the streams closed, so clients that reconnect
// to another instance meanwhile do not flap.
func (t *Tracker) Run(ctx context.Context) error {
	tick := time.NewTicker(t.opts.PresenceInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.report(ctx, true)
			t.sweepDead(ctx)
		case <-t.kick:
			t.report(ctx, false)
		case <-ctx.Done():
			return nil
		}
	}
}

// report syncs the dirty rooms, or every room when all is set.
func (t *Tracker) report(ctx context.Context, all bool) {
	type job struct {
		room          string
		live, leaving []string
	}
	var jobs []job
	now := time.Now()
	t.mu.Lock()
	for name, r := range t.rooms {
		if _, dirty := t.dirty[name]; !all && !dirty {
			continue
		}
		j := job{room: name}
		for u := range r.live {
			j.live = append(j.live, u)
		}
		for u := range r.leaving {
			j.leaving = append(j.leaving, u)
		}
		jobs = append(jobs, j)
		delete(t.dirty, name)
		if len(r.leaving) > 0 {
			r.sweepUntil = now.Add(t.opts.PresenceGrace + 2*t.opts.PresenceInterval)
		}
		clear(r.leaving)
		if r.idle(now) {
			delete(t.rooms, name) // nobody here listens to it any more
		}
	}
	t.mu.Unlock()
	for _, j := range jobs {
		if err := t.sync(ctx, j.room, j.live, j.leaving); err != nil {
			t.log.Warn("presence not reported", "room", j.room, "err", err)
			t.retry(j.room, j.leaving)
		}
	}
}

// sweepDeadMax bounds the rooms of dead instances one heartbeat sweeps.
const sweepDeadMax = 1000

// sweepDead sweeps the rooms whose entries expired, watched here or not:
// the leaves of a killed instance's users are then recorded (and their
// webhooks queued) even when no live instance watches the room. Instances
// sweeping the same room at once are safe: the script gives each leave to
// one of them.
func (t *Tracker) sweepDead(ctx context.Context) {
	callCtx, cancel := context.WithTimeout(ctx, t.opts.RedisTimeout)
	rooms, err := t.opts.Store.DuePresenceRooms(callCtx, sweepDeadMax)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("presence rooms to sweep not read", "err", err)
		}
		return
	}
	for _, room := range rooms {
		if err := t.sync(ctx, room, nil, nil); err != nil {
			t.log.Warn("presence not swept", "room", room, "err", err)
		}
	}
}

// retry puts back the leaving users of a failed report, unless they came
// back meanwhile, for the next heartbeat.
func (t *Tracker) retry(roomName string, leaving []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rooms[roomName]
	if r == nil {
		r = newRoom()
		t.rooms[roomName] = r
	}
	for _, u := range leaving {
		if r.live[u] == 0 {
			r.leaving[u] = struct{}{}
		}
	}
	if r.idle(time.Now()) {
		delete(t.rooms, roomName)
	}
}

func (t *Tracker) sync(ctx context.Context, roomName string, live, leaving []string) error {
	ctx, cancel := context.WithTimeout(ctx, t.opts.RedisTimeout)
	defer cancel()
	p, err := t.opts.Store.SyncPresence(ctx, roomName, chat.PresenceSync{
		Instance: t.instance, Live: live, Leaving: leaving,
		LiveTTL: t.opts.PresenceInterval + t.opts.PresenceGrace, LeavingTTL: t.opts.PresenceGrace,
	})
	if err != nil {
		return err
	}
	t.publish(ctx, roomName, p)
	return nil
}

// Event is the data of join and leave events.
type Event struct {
	Room string `json:"room"`
	User string `json:"user"`
	Time string `json:"time"` // RFC 3339 with milliseconds, Redis's clock
}

// TimeFormat is the form of event times, as message times have it.
const TimeFormat = "2006-01-02T15:04:05.000Z"

func (t *Tracker) publish(ctx context.Context, roomName string, p chat.Presence) {
	for _, ev := range []struct {
		name  string
		users []string
	}{{"join", p.Joined}, {"leave", p.Left}} {
		for _, u := range ev.users {
			data, _ := json.Marshal(Event{Room: roomName, User: u, Time: p.Time.Format(TimeFormat)})
			if err := t.opts.Store.PublishEvent(ctx, roomName, ev.name, data); err != nil {
				t.log.Warn("presence event not published", "room", roomName, "event", ev.name, "err", err)
			}
		}
	}
}
