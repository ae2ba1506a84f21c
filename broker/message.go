package broker

import "roomcast/redisscripts"

// Message is one room message as the hub delivers it. A Message is shared by
// every subscriber of its room: treat it as read-only.
type Message struct {
	Room  string
	ID    redisscripts.ID
	Data  []byte // the message JSON exactly as stored
	Frame []byte // Data encoded once for the wire by the hub's Encode option
}
