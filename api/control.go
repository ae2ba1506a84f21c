package api

import (
	"encoding/json"
	"sync"
	"time"

	"roomcast/api/auth"
	"roomcast/api/sse"
	"roomcast/broker/chat"
	"roomcast/broker/stream"
)

// openStreams finds this instance's open streams by their user and their
// token's jti, so that a ban or revocation reaches them. Streams with a
// server API key are not listed: bans and revocations never apply to
// them.
type openStreams struct {
	mu     sync.Mutex
	byUser map[string]map[*openStream]struct{}
	byJTI  map[string]map[*openStream]struct{}
}

// openStream is one listed stream.
type openStream struct {
	s      *stream.Stream
	user   string
	jti    string
	iat    time.Time
	multi  bool              // a GET /stream, which leaves a room it is banned from rather than end
	leaves map[string]func() // the stream's presence in each room, once each
}

func newOpenStreams() *openStreams {
	return &openStreams{byUser: map[string]map[*openStream]struct{}{}, byJTI: map[string]map[*openStream]struct{}{}}
}

func (o *openStreams) add(e *openStream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	addTo(o.byUser, e.user, e)
	if e.jti != "" {
		addTo(o.byJTI, e.jti, e)
	}
}

func (o *openStreams) remove(e *openStream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	removeFrom(o.byUser, e.user, e)
	if e.jti != "" {
		removeFrom(o.byJTI, e.jti, e)
	}
}

// of returns the streams listed under key in m.
func (o *openStreams) of(m map[string]map[*openStream]struct{}, key string) []*openStream {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*openStream, 0, len(m[key]))
	for e := range m[key] {
		out = append(out, e)
	}
	return out
}

func addTo(m map[string]map[*openStream]struct{}, key string, e *openStream) {
	set := m[key]
	if set == nil {
		set = map[*openStream]struct{}{}
		m[key] = set
	}
	set[e] = struct{}{}
}

func removeFrom(m map[string]map[*openStream]struct{}, key string, e *openStream) {
	if set := m[key]; set != nil {
		delete(set, e)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}

// Enforce applies a ban or revocation to this instance's open streams: a
// banned user's streams of the room get a banned event, then a stream of
// that room alone ends and a stream of several rooms stops carrying it;
// the streams of a revoked token get a revoked event and end. It is the
// control watcher's OnChange and does not block.
func (h *Handler) Enforce(c chat.Control) {
	switch {
	case c.Op == chat.ControlBan && c.Ban != nil:
		if c.Ban.ActiveAt(time.Now()) {
			for _, e := range h.open.of(h.open.byUser, c.Ban.User) {
				h.banStream(e, *c.Ban)
			}
		}
	case c.Op == chat.ControlRevoke && c.Revocation != nil:
		r := *c.Revocation
		var streams []*openStream
		if r.JTI != "" {
			streams = h.open.of(h.open.byJTI, r.JTI)
		} else {
			streams = h.open.of(h.open.byUser, r.User)
		}
		for _, e := range streams {
			if r.Revokes(e.user, e.jti, e.iat) && e.s.End(revokedFrame(e.user), stream.ErrRevoked) {
				h.Metrics.StreamRemoved("revoked")
			}
		}
	}
}

// banStream takes b's room out of a stream of b's user.
func (h *Handler) banStream(e *openStream, b chat.Ban) {
	frame := bannedFrame(b)
	if e.multi {
		if e.s.Leave(b.Room, frame, stream.ErrBanned) {
			h.Metrics.StreamRemoved("banned")
			h.log.Info("banned user's stream left the room", "room", b.Room)
			if leave := e.leaves[b.Room]; leave != nil {
				leave()
			}
		}
		return
	}
	for _, room := range e.s.Rooms() {
		if room == b.Room && e.s.End(frame, stream.ErrBanned) {
			h.Metrics.StreamRemoved("banned")
			h.log.Info("banned user's stream ended", "room", b.Room)
		}
	}
}

// listStream lists an opened stream of claims' user, unless it is a
// server API key's or has no user, and then applies the bans and
// revocations already in force, which may have come in since its request
// was checked. It returns the function that unlists it.
func (h *Handler) listStream(s *stream.Stream, claims *auth.Claims, user string, multi bool,
	leaves map[string]func()) (unlist func()) {
	if user == "" || (claims != nil && claims.Server()) {
		return func() {}
	}
	e := &openStream{s: s, user: user, multi: multi, leaves: leaves}
	if claims != nil {
		e.jti, e.iat = claims.JTI, claims.IssuedAt
	}
	h.open.add(e)
	if h.Control != nil {
		if h.Control.Revoked(e.user, e.jti, e.iat) && s.End(revokedFrame(e.user), stream.ErrRevoked) {
			h.Metrics.StreamRemoved("revoked")
		}
		for _, room := range s.Rooms() {
			if b, ok := h.Control.Ban(room, user); ok {
				h.banStream(e, b)
			}
		}
	}
	return func() { h.open.remove(e) }
}

// bannedFrame is the banned event: {room, user, reason?, until?}.
func bannedFrame(b chat.Ban) []byte {
	data, _ := json.Marshal(struct {
		Room   string     `json:"room"`
		User   string     `json:"user"`
		Reason string     `json:"reason,omitempty"`
		Until  *time.Time `json:"until,omitempty"`
	}{b.Room, b.User, b.Reason, b.Until})
	return sse.AppendEvent(nil, "", "banned", data)
}

// revokedFrame is the revoked event: {user}.
func revokedFrame(user string) []byte {
	data, _ := json.Marshal(struct {
		User string `json:"user"`
	}{user})
	return sse.AppendEvent(nil, "", "revoked", data)
}
