package stream

import (
	"sync"
	"time"
)

// slots is the number of groups the wheel visits in turn: each stream is
// looked at once per heartbeat interval, and each tick touches only a
// slot's share of the streams.
const slots = 16

// wheel sends heartbeats to every open stream from one goroutine, which
// runs only while streams are open.
type wheel struct {
	every time.Duration

	mu      sync.Mutex
	slots   [slots]map[*Stream]struct{}
	active  map[*Stream]struct{} // parked on their channel: settled to a read once quiet
	next    int                  // slot of the next stream added
	n       int
	stop    chan struct{} // closed to stop the running goroutine; nil when none runs
	stopped chan struct{}
}

func newWheel(every time.Duration) *wheel {
	w := &wheel{every: every, active: make(map[*Stream]struct{})}
	for i := range w.slots {
		w.slots[i] = make(map[*Stream]struct{})
	}
	return w
}

func (w *wheel) add(s *Stream) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	slot := w.next
	w.next = (w.next + 1) % slots
	w.slots[slot][s] = struct{}{}
	w.n++
	if w.n == 1 && w.every > 0 {
		w.stop, w.stopped = make(chan struct{}), make(chan struct{})
		go w.run(w.stop, w.stopped)
	}
	return slot
}

func (w *wheel) remove(s *Stream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.slots[s.slot][s]; !ok {
		return
	}
	delete(w.slots[s.slot], s)
	delete(w.active, s)
	w.n--
	if w.n == 0 && w.stop != nil {
		close(w.stop)
		w.stop = nil
	}
}

// busy notes a stream that waits on its channel.
func (w *wheel) busy(s *Stream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.slots[s.slot][s]; ok {
		w.active[s] = struct{}{}
	}
}

// quietAfter is how long a busy stream waits on its channel before it goes
// back to waiting in a read; it bounds how late a client that leaves a
// stream that has just been written is noticed.
const quietAfter = 250 * time.Millisecond

func (w *wheel) run(stop, stopped chan struct{}) {
	defer close(stopped)
	tick := min(max(w.every/slots, time.Millisecond), quietAfter/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	var due []*Stream
	nextSlot, slot := time.Now(), 0
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			w.mu.Lock()
			due = due[:0]
			for s := range w.active {
				due = append(due, s)
			}
			w.mu.Unlock()
			quietSince := now.Add(-quietAfter)
			for _, s := range due {
				if s.settle(quietSince) {
					w.mu.Lock()
					delete(w.active, s)
					w.mu.Unlock()
				}
			}
			if now.Before(nextSlot) {
				continue
			}
			nextSlot = nextSlot.Add(max(w.every/slots, time.Millisecond))
			w.mu.Lock()
			due = due[:0]
			for s := range w.slots[slot] {
				due = append(due, s)
			}
			w.mu.Unlock()
			slot = (slot + 1) % slots
			quiet := now.Add(-(w.every - w.every/slots)).UnixNano()
			for _, s := range due {
				if s.lastWrite.Load() <= quiet {
					s.ping()
				}
			}
			clear(due)
		}
	}
}
