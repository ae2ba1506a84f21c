package chat

import (
	"errors"
	"time"
)

// Ban keeps a user out of a room: no posts, typing or read markers there,
// no new streams of it, and the user's open streams of it are told and
// stop carrying it.
type Ban struct {
	Room   string     `json:"room"`
	User   string     `json:"user"`
	Until  *time.Time `json:"until,omitempty"`  // nil: until lifted
	Reason string     `json:"reason,omitempty"` // shown to the user
	By     string     `json:"by"`               // who banned: a moderator's subject, or "system" for a server API key
	At     time.Time  `json:"at"`               // when the ban was set
}

// ActiveAt reports whether the ban applies at t: it has no end, or ends
// after t.
func (b Ban) ActiveAt(t time.Time) bool { return b.Until == nil || b.Until.After(t) }

// Revocation makes tokens unacceptable before their expiry: the one token
// with ID JTI, or every token of User issued before IssuedBefore.
// Exactly one of JTI and User is set.
type Revocation struct {
	JTI          string    `json:"jti,omitempty"`
	User         string    `json:"user,omitempty"`
	IssuedBefore time.Time `json:"issued_before,omitzero"`
	// Expires is when the entry is forgotten: when the tokens it revokes
	// have expired anyway.
	Expires time.Time `json:"expires_at"`
}

// Revokes reports whether r revokes a token of user with ID jti ("" for
// none) issued at iat (zero when the token has no iat: such a token cannot
// prove it is newer than IssuedBefore, so a revocation of its user revokes
// it).
func (r Revocation) Revokes(user, jti string, iat time.Time) bool {
	if r.JTI != "" {
		return jti == r.JTI
	}
	return user == r.User && (iat.IsZero() || iat.Before(r.IssuedBefore))
}

// ErrNoBan is what lifting a ban that does not exist (or has expired)
// returns.
var ErrNoBan = errors.New("no such ban")

// Control is a message on a deployment's control channel: a ban set or
// lifted, or a token revoked. The scripts that change the stored state
// publish it in the same call; every instance's control watcher applies it.
type Control struct {
	Op string `json:"op"` // ControlBan, ControlLift or ControlRevoke
	// Ban is the ban set, or for ControlLift the room and user whose ban
	// was lifted.
	Ban        *Ban        `json:"ban,omitempty"`
	Revocation *Revocation `json:"revocation,omitempty"`
}

// The operations of a Control message.
const (
	ControlBan    = "ban"
	ControlLift   = "lift"
	ControlRevoke = "revoke"
)
