// Package redisscripts owns roomcast's data in Redis: the names of every key
// and channel, and the Lua scripts that store and read room history
// atomically. The values it stores and returns are broker/chat's.
package redisscripts

import (
	"strconv"
	"strings"

	"roomcast/broker/chat"
)

// Keys names the Redis keys and channels of one deployment. All keys of a
// room share the hash tag {room}, so a script touching them runs on one
// Redis Cluster node.
type Keys struct {
	prefix  string
	perSlot bool // a bucket per Cluster hash slot (see buckets.go)
}

// NewKeys returns the key layout for a deployment whose keys and channels
// all start with prefix.
func NewKeys(prefix string) Keys { return Keys{prefix: prefix} }

func (k Keys) meta(room string) string    { return k.prefix + "{" + room + "}:meta" }
func (k Keys) history(room string) string { return k.prefix + "{" + room + "}:history" }

// log holds a room's changes (edits, deletes) scored by their positions,
// which they share with the messages in history: every position of the
// room is a message in history or a change in log.
func (k Keys) log(room string) string { return k.prefix + "{" + room + "}:log" }

// idempotency names a user's idempotency key in a room; the user's length
// keeps "a:b" + "c" apart from "a" + "b:c".
func (k Keys) idempotency(room, user, key string) string {
	return k.prefix + "{" + room + "}:idem:" + strconv.Itoa(len(user)) + ":" + user + ":" + key
}

// settings holds a room's own settings (chat.Settings), field by field
// as settings.go writes them; the post script reads it on every post.
func (k Keys) settings(room string) string { return k.prefix + "{" + room + "}:settings" }

// slow marks that user posted in room lately, expiring when slow mode
// lets them post again.
func (k Keys) slow(room, user string) string {
	return k.prefix + "{" + room + "}:slow:" + strconv.Itoa(len(user)) + ":" + user
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

// read holds a room's read markers (user -> seq) and live the seqs of its
// retained messages that are not tombstones (read_state.lua).
func (k Keys) read(room string) string { return k.prefix + "{" + room + "}:read" }
func (k Keys) live(room string) string { return k.prefix + "{" + room + "}:live" }

// userRooms indexes the rooms a user has a read marker in (GET /me/rooms).
// It is the user's, so it lives outside every room's slot; see indexRoom.
func (k Keys) userRooms(user string) string {
	return k.prefix + "user:" + strconv.Itoa(len(user)) + ":" + user + ":rooms"
}

// bans holds room's bans (user -> chat.Ban JSON), banEnds the same users
// scored by when their ban ends (ms; +inf for never), so that the scripts
// forget ended bans.
func (k Keys) bans(room string) string    { return k.prefix + "{" + room + "}:bans" }
func (k Keys) banEnds(room string) string { return k.prefix + "{" + room + "}:bans:ends" }

// bannedRooms holds a bucket's rooms that have bans, so that an instance
// can read every ban of the deployment (see buckets.go).
func (k Keys) bannedRooms(tag string) string { return k.prefix + "{" + tag + "}:bucket:bans" }

// revocations holds the deployment's token revocations as members
// "jti:<jti>" or "user:<issued_before ms>:<user>", scored by when they
// are forgotten (ms). One key: revocations name no room.
func (k Keys) revocations() string { return k.prefix + "{revocations}:revoked" }

// ControlChannel is the deployment's one control channel (chat.Control
// messages: bans and revocations). It is a plain Pub/Sub channel in every
// broker mode: on a Redis Cluster a PUBLISH reaches every node, so one
// SUBSCRIBE per process on any node hears it, and a script may PUBLISH it
// whatever slot its keys are in. It does not match Pattern.
func (k Keys) ControlChannel() string { return k.prefix + "control" }

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

// ShardChannel is the sharded Pub/Sub (SPUBLISH/SSUBSCRIBE) channel of
// room's messages. It carries the room's hash tag, so it lives in the slot
// of the room's keys and the post script may publish to it.
func (k Keys) ShardChannel(room string) string { return k.prefix + "{" + room + "}:ch" }

// ShardProbeChannel is a sharded channel of no room whose slot depends on
// name; a sharded subscriber picks a name that lands on the shard it probes.
func (k Keys) ShardProbeChannel(name string) string { return k.prefix + "probe:{" + name + "}" }

// RoomFromChannel returns the room a channel belongs to, pattern-mode
// (Channel) or sharded (ShardChannel), and false for channels that are not
// room channels (probes, other deployments).
func (k Keys) RoomFromChannel(channel string) (string, bool) {
	if room, ok := strings.CutPrefix(channel, k.prefix+"room:"); ok {
		return room, chat.ValidRoom(room)
	}
	rest, ok := strings.CutPrefix(channel, k.prefix+"{")
	room, ok2 := strings.CutSuffix(rest, "}:ch")
	return room, ok && ok2 && chat.ValidRoom(room)
}

// RoomOf is RoomFromChannel without allocating or a regular expression:
// it runs once per received message, of either channel form.
func (k Keys) RoomOf(channel string) (string, bool) {
	if len(channel) < len(k.prefix) || channel[:len(k.prefix)] != k.prefix {
		return "", false
	}
	rest := channel[len(k.prefix):]
	var name string
	switch {
	case strings.HasPrefix(rest, "room:"): // Channel
		name = rest[len("room:"):]
	case len(rest) > len("{}:ch") && rest[0] == '{' && strings.HasSuffix(rest, "}:ch"): // ShardChannel
		name = rest[1 : len(rest)-len("}:ch")]
	default:
		return "", false
	}
	if name == "" || len(name) > 128 {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return "", false
		}
	}
	return name, true
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
