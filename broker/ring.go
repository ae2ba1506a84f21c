package broker

import "roomcast/broker/chat"

// ring keeps the last messages delivered to a room, oldest first, so that a
// stream catching up from a recent position needs no history read.
type ring struct {
	buf  []*Message
	head int // index of the oldest message
	n    int
}

func newRing(size int) ring { return ring{buf: make([]*Message, size)} }

func (r *ring) add(m *Message) {
	if len(r.buf) == 0 {
		return
	}
	if r.n > 0 && !m.ID.Follows(r.at(r.n-1).ID) {
		r.clear() // a new epoch: the ring holds one unbroken run
	}
	if r.n < len(r.buf) {
		r.buf[(r.head+r.n)%len(r.buf)] = m
		r.n++
		return
	}
	r.buf[r.head] = m
	r.head = (r.head + 1) % len(r.buf)
}

func (r *ring) clear() {
	clear(r.buf)
	r.head, r.n = 0, 0
}

func (r *ring) at(i int) *Message { return r.buf[(r.head+i)%len(r.buf)] }

// after returns the messages after from, up to last, if the ring holds all
// of them: from is last itself, or a message in the ring, or the position
// right before its oldest message. A position the ring cannot place is for
// Redis to answer (it may be older, or of another epoch, or need a reset).
func (r *ring) after(from, last chat.ID) ([]*Message, bool) {
	if from == last && from.Epoch != "" {
		return nil, true
	}
	for i := range r.n {
		m := r.at(i)
		if m.ID == from || (i == 0 && m.ID.Follows(from) && from.Epoch != "") {
			start := i + 1
			if m.ID != from {
				start = i
			}
			out := make([]*Message, 0, r.n-start)
			for j := start; j < r.n; j++ {
				out = append(out, r.at(j))
			}
			return out, true
		}
	}
	return nil, false
}

// oldest returns the ring's oldest message, or nil when it is empty.
func (r *ring) oldest() *Message {
	if r.n == 0 {
		return nil
	}
	return r.at(0)
}

// prepend puts older, an unbroken run of messages that ends right before the
// ring's oldest one, in front of what the ring holds, as far as room is
// left: the newest messages are kept.
func (r *ring) prepend(older []*Message) {
	room := len(r.buf) - r.n
	if room <= 0 || len(older) == 0 {
		return
	}
	older = older[max(0, len(older)-room):]
	for i := len(older) - 1; i >= 0; i-- {
		r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
		r.buf[r.head] = older[i]
		r.n++
	}
}
