package engine

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// waiting remembers, per throttle key, the lines this engine scored for
// later, so that a raise of the key's limits can bring them forward.
type waiting struct {
	mu    sync.Mutex
	lines map[string]map[streams.Line]bool
}

func (w *waiting) note(later map[streams.Line]time.Time) {
	if len(later) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lines == nil {
		w.lines = map[string]map[streams.Line]bool{}
	}
	for l := range later {
		if w.lines[l.Key] == nil {
			w.lines[l.Key] = map[streams.Line]bool{}
		}
		w.lines[l.Key][l] = true
	}
}

func (w *waiting) take(key string) []streams.Line {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []streams.Line
	for l := range w.lines[key] {
		out = append(out, l)
	}
	delete(w.lines, key)
	return out
}

// perSession is how many jobs of a line one worker takes in a run (one
// after another, over one reused session), and so how many waiting jobs
// warrant one more session: a small destination's five jobs go over one
// session rather than five at once, a big one's over as many as its
// key's connections allow.
const perSession = 10

// flow is, per line, how many runs of its jobs this engine's workers hold
// and how many jobs were left waiting at the last take: how many more
// runs to start.
type flow struct {
	mu    sync.Mutex
	lines map[streams.Line]*lineFlow
	wake  map[streams.Line]bool // lines to make due at the next round
}

type lineFlow struct {
	runs, jobs int  // runs this engine's workers hold, and their jobs
	left       int  // jobs left waiting at the last take
	known      bool // left was read at least once
	held       bool // passed over for enough in flight: wake it when one ends
}

// want is how many runs of l's jobs to start now; 0 marks the line to be
// woken when one of its runs ends.
func (f *flow) want(l streams.Line) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.lines[l]
	if lf == nil || !lf.known {
		return 1
	}
	n := (lf.jobs+lf.left+perSession-1)/perSession - lf.runs
	if n <= 0 {
		if lf.runs == 0 {
			return 1
		}
		lf.held = true
		return 0
	}
	return n
}

// took records a take of l: n runs of jobs jobs started, left jobs still
// waiting.
func (f *flow) took(l streams.Line, n, jobs, left int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lines == nil {
		f.lines = map[streams.Line]*lineFlow{}
	}
	lf := f.lines[l]
	if lf == nil {
		lf = &lineFlow{}
		f.lines[l] = lf
	}
	lf.runs += n
	lf.jobs += jobs
	lf.left, lf.known = left, true
	if lf.runs == 0 && lf.left == 0 {
		delete(f.lines, l)
	}
}

// finished records the end of one of l's runs, of jobs jobs; true when
// the line was passed over and is to be woken.
func (f *flow) finished(l streams.Line, jobs int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.lines[l]
	if lf == nil {
		return false
	}
	lf.runs--
	lf.jobs -= jobs
	wake := lf.held
	lf.held = false
	if wake {
		if f.wake == nil {
			f.wake = map[streams.Line]bool{}
		}
		f.wake[l] = true
	}
	if lf.runs <= 0 && lf.left == 0 {
		delete(f.lines, l)
	}
	return wake
}

// woken returns (and forgets) the lines to wake, due now.
func (f *flow) woken() map[streams.Line]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.wake) == 0 {
		return nil
	}
	now := time.Now()
	out := make(map[streams.Line]time.Time, len(f.wake))
	for l := range f.wake {
		out[l] = now
	}
	f.wake = nil
	return out
}

// slots counts idle workers: the line server takes no more jobs than
// there are workers to start them at once.
type slots struct {
	mu   sync.Mutex
	free int
	more chan struct{}
}

func newSlots(n int) *slots { return &slots{free: n, more: make(chan struct{}, 1)} }

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
