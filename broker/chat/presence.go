package chat

import "time"

// InstanceIDLen is the length of the instance ids of PresenceSync.
const InstanceIDLen = 16

// PresenceSync is one instance's report of its users in a room.
type PresenceSync struct {
	Instance   string        // InstanceIDLen characters, unique to the process
	Live       []string      // users with a stream of the room open on the instance
	Leaving    []string      // users whose last stream of the room on the instance just closed
	LiveTTL    time.Duration // a live user's entry lasts this long unless synced again
	LeavingTTL time.Duration // a leaving user stays present this long (the grace period)
	List       int           // present users to return, oldest first; 0 for none
}

// Presence is a room's presence after a SyncPresence.
type Presence struct {
	Time   time.Time // Redis's clock at the sync
	Joined []string  // users present since this sync, in no other instance's report
	Left   []string  // users this sync found gone: their last entry expired
	Count  int       // users present
	Users  []PresentUser
}

// PresentUser is a user present in a room since a time.
type PresentUser struct {
	User  string
	Since time.Time
}
