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
	next    int // slot of the next stream added
	n       int
	stop    chan struct{} // closed to stop the running goroutine; nil when none runs
	stopped chan struct{}
}

func newWheel(every time.Duration) *wheel {
	w := &wheel{every: every}
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
	w.n--
	if w.n == 0 && w.stop != nil {
		close(w.stop)
		w.stop = nil
	}
}

func (w *wheel) run(stop, stopped chan struct{}) {
	defer close(stopped)
	tick := max(w.every/slots, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	var due []*Stream
	for slot := 0; ; slot = (slot + 1) % slots {
		select {
		case <-stop:
			return
		case now := <-t.C:
			w.mu.Lock()
			due = due[:0]
			for s := range w.slots[slot] {
				due = append(due, s)
			}
			w.mu.Unlock()
			quiet := now.Add(-(w.every - tick)).UnixNano()
			for _, s := range due {
				if s.lastWrite.Load() <= quiet {
					s.ping()
				}
			}
			clear(due)
		}
	}
}
