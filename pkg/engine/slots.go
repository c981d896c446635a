package engine

import (
	"context"
	"sync"
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

// inflight is the set of job ids held by this engine's workers (or on
// their way to them): whatever the cause, a job is never in two workers.
type inflight struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// add claims id; false when it is already held.
func (f *inflight) add(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; ok {
		return false
	}
	if f.ids == nil {
		f.ids = map[string]struct{}{}
	}
	f.ids[id] = struct{}{}
	return true
}

func (f *inflight) remove(id string) {
	f.mu.Lock()
	delete(f.ids, id)
	f.mu.Unlock()
}

func (f *inflight) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}
