// Package redisscripts owns roomcast's data in Redis: the names of every key
// and channel, the message id format, and the Lua scripts that store and read
// room history atomically.
package redisscripts

import (
	"regexp"
	"strconv"
	"strings"
)

// roomPattern is the set of valid room ids. It excludes every character that
// has a meaning in Redis glob patterns, hash tags or our key layout.
var roomPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ValidRoom reports whether room is a valid room id.
func ValidRoom(room string) bool { return roomPattern.MatchString(room) }

// Keys names the Redis keys and channels of one deployment. All keys of a
// room share the hash tag {room}, so a script touching them runs on one
// Redis Cluster node.
type Keys struct {
	prefix string
}

// NewKeys returns the key layout for a deployment whose keys and channels
// all start with prefix.
func NewKeys(prefix string) Keys { return Keys{prefix: prefix} }

func (k Keys) meta(room string) string    { return k.prefix + "{" + room + "}:meta" }
func (k Keys) history(room string) string { return k.prefix + "{" + room + "}:history" }

// idempotency names a user's idempotency key in a room; the user's length
// keeps "a:b" + "c" apart from "a" + "b:c".
func (k Keys) idempotency(room, user, key string) string {
	return k.prefix + "{" + room + "}:idem:" + strconv.Itoa(len(user)) + ":" + user + ":" + key
}

// presenceEntries holds a room's (instance, user) pairs scored by expiry,
// presenceUsers its present users scored by the time they joined, and
// presenceRefs each present user's number of pairs.
func (k Keys) presenceEntries(room string) string { return k.prefix + "{" + room + "}:presence" }
func (k Keys) presenceUsers(room string) string   { return k.prefix + "{" + room + "}:presence:users" }
func (k Keys) presenceRefs(room string) string    { return k.prefix + "{" + room + "}:presence:refs" }

// typing marks that a user's typing event in room was published lately.
func (k Keys) typing(room, user string) string {
	return k.prefix + "{" + room + "}:typing:" + strconv.Itoa(len(user)) + ":" + user
}

func (k Keys) rate(name, client string) string { return k.prefix + "rate:" + name + ":" + client }

// Channel is the Pub/Sub channel on which room's messages are published.
func (k Keys) Channel(room string) string { return k.prefix + "room:" + room }

// ProbeChannel is a channel that matches Pattern but belongs to no room (room
// ids cannot contain ':'). A subscriber publishes to it to prove that its
// subscription still receives.
func (k Keys) ProbeChannel(name string) string { return k.prefix + "room::probe:" + name }

// Pattern is the PSUBSCRIBE pattern matching every room channel and probe
// channel of this deployment, and nothing of another deployment.
func (k Keys) Pattern() string { return globEscape(k.prefix) + "room:*" }

// RoomFromChannel returns the room a channel belongs to, and false for
// channels that are not room channels (probes, other deployments).
func (k Keys) RoomFromChannel(channel string) (string, bool) {
	room, ok := strings.CutPrefix(channel, k.prefix+"room:")
	return room, ok && ValidRoom(room)
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
