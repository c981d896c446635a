package engine

import (
	"math"
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

// keep drops from later the lines take has given up since note (their
// key's rate went up): they are due now, not then.
func (w *waiting) keep(later map[streams.Line]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for l := range later {
		if !w.lines[l.Key][l] {
			delete(later, l)
		}
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

// A marketing destination with a backlog is taken in runs of as many jobs
// as its attempts make in runFor (by the time its runs took per attempt),
// at least perSession and at most maxRun: every run ends in a wait for the
// line server's next poll (paced, pollEvery), so runs of ten fast attempts
// (~15 ms) left a quarter of a busy destination's sessions idle (BENCHMARKS
// 2026-12-01, third sitting). A slow or paced destination keeps runs of
// perSession, and jobs are shared evenly among a take's runs, so a
// destination with fewer jobs than its sessions' runs of perSession gets
// no longer runs either.
const (
	runFor = 100 * time.Millisecond
	maxRun = 50
)

// flow is, per line, how many runs of its jobs this engine's workers hold
// and how many jobs were left waiting at the last take: how many more
// runs to start.
//
// It keeps the same sums per destination (over its lines in every shard
// and campaign): a marketing line not taken from yet whose destination
// has runs going that are not full (the long tail: a small domain's jobs
// trickling into lines of several shards as they are routed) waits for
// one of them to end, and is then taken with the destination's other
// lines (see widen): its jobs go in one run over one session.
type flow struct {
	mu    sync.Mutex
	lines map[streams.Line]*lineFlow
	dests map[dest]*destFlow
	wake  map[streams.Line]bool // lines to make due at the next round
	// fill is, per destination, the jobs an entry of its lines held at
	// its last takes (smoothed; unknown: 1): a marketing line's entries
	// are packs of up to streams.LinePack jobs, so a take asks for as
	// many entries as make the jobs it wants.
	fill map[dest]float64
}

// fillMax bounds the destinations whose fill is remembered (past it, the
// memory starts over).
const fillMax = 100000

// entries is how many entries of l to take for about jobs jobs.
func (f *flow) entries(l streams.Line, jobs int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.fill[destOf(l)]; fl > 1 {
		return max(1, int(float64(jobs)/fl+0.5))
	}
	return jobs
}

// linesFor is how many of a destination's lines (l's) to take about jobs
// jobs from: all of lines, but where its entries are packs, no more than
// it takes to make jobs at one entry a line.
func (f *flow) linesFor(l streams.Line, jobs, lines int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.fill[destOf(l)]; fl > 1 {
		return min(lines, max(1, int(math.Ceil(float64(jobs)/fl))))
	}
	return lines
}

// filled records a take of l that read jobs jobs from entries entries.
func (f *flow) filled(l streams.Line, jobs, entries int) {
	if entries == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fill == nil || len(f.fill) > fillMax {
		f.fill = map[dest]float64{}
	}
	d, now := destOf(l), float64(jobs)/float64(entries)
	if old, ok := f.fill[d]; ok {
		now = (old + now) / 2
	}
	f.fill[d] = now
}

// jobsIn is about how many jobs entries entries of l hold.
func (f *flow) jobsIn(l streams.Line, entries int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl := f.fill[destOf(l)]; fl > 1 {
		return int(float64(entries)*fl + 0.5)
	}
	return entries
}

// destFlow sums a destination's lines' flows; held are its lines waiting
// for one of its runs to end.
type destFlow struct {
	runs, jobs, left int
	held             map[streams.Line]bool
	per              time.Duration // a run's time per attempt, smoothed; 0 unknown
}

type lineFlow struct {
	runs, jobs int  // runs this engine's workers hold, and their jobs
	left       int  // jobs left waiting at the last take
	known      bool // left was read at least once
	held       bool // passed over for enough in flight: wake it when one ends
}

// knows reports whether l was taken from and has runs or jobs left.
func (f *flow) knows(l streams.Line) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.lines[l]
	return lf != nil && lf.known
}

// want is how many runs of l's jobs to start now; 0 marks the line to be
// woken when one of its runs ends.
func (f *flow) want(l streams.Line) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.lines[l]
	if lf == nil || !lf.known {
		df := f.dests[destOf(l)]
		if l.Lane != streams.Transactional && df != nil && df.runs > 0 && df.jobs+df.left < perSession*df.runs {
			if df.held == nil {
				df.held = map[streams.Line]bool{}
			}
			df.held[l] = true
			return 0
		}
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
		f.lines, f.dests = map[streams.Line]*lineFlow{}, map[dest]*destFlow{}
	}
	lf := f.lines[l]
	if lf == nil {
		lf = &lineFlow{}
		f.lines[l] = lf
	}
	df := f.dests[destOf(l)]
	if df == nil {
		df = &destFlow{}
		f.dests[destOf(l)] = df
	}
	df.runs += n
	df.jobs += jobs
	df.left += left - lf.left
	lf.runs += n
	lf.jobs += jobs
	lf.left, lf.known = left, true
	f.forget(l, lf, df)
}

// forget drops the books of a line, and of its destination, that have
// nothing going or waiting any more. Caller holds f.mu.
func (f *flow) forget(l streams.Line, lf *lineFlow, df *destFlow) {
	if lf.runs <= 0 && lf.left == 0 {
		delete(f.lines, l)
	}
	if df.runs <= 0 && df.left == 0 && len(df.held) == 0 {
		delete(f.dests, destOf(l))
	}
}

// runLen is how many jobs of l's destination a run takes (see runFor).
func (f *flow) runLen(l streams.Line) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	df := f.dests[destOf(l)]
	if l.Lane == streams.Transactional || df == nil || df.per <= 0 {
		return perSession
	}
	return min(max(int(runFor/df.per), perSession), maxRun)
}

// finished records the end of one of l's runs, of jobs jobs; per is the
// run's time per attempt (0: none made). True when the line was passed
// over and is to be woken.
func (f *flow) finished(l streams.Line, jobs int, per time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.lines[l]
	if lf == nil {
		return false
	}
	df := f.dests[destOf(l)]
	switch {
	case per <= 0:
	case df.per == 0:
		df.per = per
	default:
		df.per = (3*df.per + per) / 4
	}
	lf.runs--
	lf.jobs -= jobs
	df.runs--
	df.jobs -= jobs
	if f.wake == nil {
		f.wake = map[streams.Line]bool{}
	}
	wake := lf.held || len(df.held) > 0
	if lf.held {
		f.wake[l] = true
	}
	for h := range df.held {
		f.wake[h] = true
	}
	lf.held, df.held = false, nil
	f.forget(l, lf, df)
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

// wakeAgain gives back the lines woken returned that could not be made
// due.
func (f *flow) wakeAgain(ls map[streams.Line]time.Time) {
	if len(ls) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wake == nil {
		f.wake = map[streams.Line]bool{}
	}
	for l := range ls {
		f.wake[l] = true
	}
}
