package engine

import (
	"context"
	"sync"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// slots counts idle workers: the line server takes no more jobs than
// there are workers to start them at once.
type slots struct {
	mu   sync.Mutex
	free int
	more chan struct{}
}

func newSlots(n int) *slots { return &slots{free: n, more: make(chan struct{}, 1)} }

// idle is how many slots are free.
func (s *slots) idle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.free
}

// take reserves up to n slots and returns how many it got.
func (s *slots) take(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, s.free)
	s.free -= n
	return n
}

func (s *slots) give(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	s.free += n
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// wait blocks until a slot is free; false when ctx ended.
func (s *slots) wait(ctx context.Context) bool {
	for {
		s.mu.Lock()
		free := s.free
		s.mu.Unlock()
		if free > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.more:
		}
	}
}

// inflight is the set of jobs held by this engine's workers (or on their
// way to them), by job id: whatever the cause, a job is never in two
// workers. Each is held as the entry it was read from (its stream and
// id): a job its run sends back in line (going back) is held until that
// step is done, but the entry the step wrote may be claimed meanwhile —
// the line server may read it before the run lets go — and the run's
// letting go then leaves the new claim alone.
type inflight struct {
	mu  sync.Mutex
	ids map[string]held
}

type held struct {
	entry entry // the entry it was read from
	back  bool  // going back in line as an entry of its own
}

// entry names a stream entry: its stream and id.
type entry struct{ stream, id string }

// add claims d's job as read from d's entry; false when it is held, but
// for one going back, read from another entry (the one put back).
func (f *inflight) add(d streams.Delivery) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.ids[d.ID]; ok && (!h.back || h.entry == entryOf(d)) {
		return false
	}
	if f.ids == nil {
		f.ids = map[string]held{}
	}
	f.ids[d.ID] = held{entry: entryOf(d)}
	return true
}

// entryOf names the entry d was read from.
func entryOf(d streams.Delivery) entry { return entry{d.Stream, d.StreamID} }

// goingBack marks d's job, held as read from d's entry, as going back in
// line (see add).
func (f *inflight) goingBack(d streams.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.ids[d.ID]; ok && h.entry == entryOf(d) {
		f.ids[d.ID] = held{entry: h.entry, back: true}
	}
}

// remove lets d's job go, unless it is held as read from another entry.
func (f *inflight) remove(d streams.Delivery) {
	f.mu.Lock()
	if h, ok := f.ids[d.ID]; ok && h.entry == entryOf(d) {
		delete(f.ids, d.ID)
	}
	f.mu.Unlock()
}

func (f *inflight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}
