package engine

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// dest is a destination: a lane's throttle key, with lines in several
// shards and campaigns.
type dest struct {
	lane streams.Lane
	key  string
}

func destOf(l streams.Line) dest { return dest{l.Lane, l.Key} }

// maxDestLines bounds how many lines of one destination known only from
// routing join a take (a destination with more waits for the poll).
const maxDestLines = 24

// known remembers, per destination, the lines this engine's routers put
// jobs into that may still hold some: a destination served for one line
// due in a poll takes from its other lines in the same step (the poll
// reads only each shard's earliest lines, so a small domain's lines in
// five shards are seldom in one poll together).
type known struct {
	mu    sync.Mutex
	lines map[dest]map[streams.Line]bool
	n     int // lines added since the last reset
}

// knownMax bounds the lines remembered (those another engine emptied are
// never found empty here): past it, the memory starts over.
const knownMax = 100000

func (k *known) add(rs []streams.Routed) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lines == nil || k.n > knownMax {
		k.lines, k.n = map[dest]map[streams.Line]bool{}, 0
	}
	for _, r := range rs {
		d := destOf(r.Line)
		if k.lines[d] == nil {
			k.lines[d] = map[streams.Line]bool{}
		}
		if !k.lines[d][r.Line] {
			k.lines[d][r.Line] = true
			k.n++
		}
	}
}

// of returns up to maxDestLines known lines of d.
func (k *known) of(d dest) []streams.Line {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []streams.Line
	for l := range k.lines[d] {
		if len(out) == maxDestLines {
			break
		}
		out = append(out, l)
	}
	return out
}

// drop forgets line l (found empty).
func (k *known) drop(l streams.Line) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ls := k.lines[destOf(l)]; ls != nil {
		delete(ls, l)
		if len(ls) == 0 {
			delete(k.lines, destOf(l))
		}
	}
}

// widen adds to a line not taken from yet the lines of its destination
// this engine routed into and has not taken from either (not used in
// this poll, their campaign sending): a small domain's jobs, one in each
// of several shards, then go in one run over one session. A destination
// whose lines are known (a big one) is served line by line.
func (e *Engine) widen(ctx context.Context, lines []streams.Line, used map[streams.Line]bool, later map[streams.Line]time.Time) []streams.Line {
	for _, l := range e.known.of(destOf(lines[0])) {
		if used[l] || e.flow.knows(l) || (l.Campaign != "" && !e.campaignSends(ctx, l, later)) {
			continue
		}
		used[l] = true
		delete(later, l)
		lines = append(lines, l)
	}
	return lines
}

// ask is a due line, with the lines of its destination that join it (see
// widen), the throttle is asked for: the worker slots reserved for them
// and the permits granted.
type ask struct {
	lines    []streams.Line
	sessions int
	permits  []*throttle.Permit
	vias     []*via // the source of each permit (egress.go)
}

// admitParallel bounds how many throttle keys admitAll asks at once.
const admitParallel = 32

// admitAll asks the throttle for each destination's permits (up to its
// sessions), different keys at once (a key new to this engine costs a
// round trip to Redis; a poll of the long tail has hundreds). A
// destination given none gives its slots back and its lines are scored
// for when to ask again (in later). It returns the asks given permits.
func (e *Engine) admitAll(ctx context.Context, asks []ask, later map[streams.Line]time.Time) []ask {
	at := make([]time.Time, len(asks))
	var wg sync.WaitGroup
	sem := make(chan struct{}, admitParallel)
	for i := range asks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			asks[i].permits, asks[i].vias, at[i] = e.admitSpread(ctx, asks[i].lines[0], asks[i].sessions)
		}()
	}
	wg.Wait()
	kept := asks[:0]
	for i, a := range asks {
		if len(a.permits) > 0 {
			kept = append(kept, a)
			continue
		}
		e.slots.give(a.sessions)
		if limit := e.Now().Add(maxWait); at[i].IsZero() || at[i].After(limit) {
			at[i] = limit
		}
		for _, l := range a.lines {
			later[l] = at[i]
		}
	}
	return kept
}

// takeAll reads up to a run's length (flow.runLen) per permit of every asked
// destination (shared among its lines), every line in one pipelined round
// trip that also scores the lines of later (its error is that scoring's),
// checks them against the suppression list (one check per lane), and
// hands each destination's to workers (see dispatch). A round with no
// asks does not come here: the next poll scores its later (serveLines).
func (e *Engine) takeAll(ctx context.Context, asks []ask, out map[streams.Lane]chan task, later map[streams.Line]time.Time) error {
	var ta []streams.TakeAsk
	for i, a := range asks {
		per := e.flow.runLen(a.lines[0])
		for _, v := range a.vias {
			if v != nil && v.ramping {
				per = perSession // a warming source's room is counted in runs of perSession (admitVia)
			}
		}
		want := len(a.permits) * per
		// Lines whose entries are packs give at least a pack each: from
		// a destination wanting fewer jobs than a pack a line, only as
		// many lines as make them (the others stay due).
		a.lines = a.lines[:e.flow.linesFor(a.lines[0], want, len(a.lines))]
		asks[i].lines = a.lines
		n := (want + len(a.lines) - 1) / len(a.lines)
		for _, l := range a.lines {
			ta = append(ta, streams.TakeAsk{Line: l, N: e.flow.entries(l, n)})
		}
	}
	taken, deferErr := e.q.TakeMany(ctx, ta, later)
	byLane := map[streams.Lane][]string{} // recipients, to check
	for i, t := range taken {
		if t.Err != nil && ctx.Err() == nil {
			e.health.failed(t.Err)
			e.Log.Error("take jobs", "line", ta[i].Line.Name(), "err", t.Err)
			if n, _ := e.putBackLost(ctx, ta[i].Line); n > 0 {
				e.Log.Warn("put back jobs of a lost reply", "line", ta[i].Line.Name(), "jobs", n)
			}
		}
		for _, d := range t.Jobs {
			byLane[ta[i].Line.Lane] = append(byLane[ta[i].Line.Lane], d.To)
		}
	}
	type check struct {
		blocked []*suppression.Entry
		err     error
	}
	checked := map[streams.Lane]*check{}
	for l, addrs := range byLane {
		c := &check{}
		c.blocked, c.err = e.checkBatch(ctx, l, addrs)
		checked[l] = c
	}
	at, k := map[streams.Lane]int{}, 0
	for ai, a := range asks {
		jobs := make([]job, 0, takenJobs(taken[k:k+len(asks[ai].lines)]))
		left := map[streams.Line]int{}
		c := checked[a.lines[0].Lane]
		for _, l := range a.lines {
			t := taken[k]
			k++
			e.flow.filled(l, len(t.Jobs), t.Entries)
			left[l] = e.flow.jobsIn(l, t.Left)
			if len(t.Jobs) == 0 && t.Left == 0 && t.Err == nil {
				e.known.drop(l)
			}
			from := at[l.Lane]
			at[l.Lane] = from + len(t.Jobs)
			for i, d := range t.Jobs {
				jobs = append(jobs, job{d: d, line: l, suppressed: c.blocked[from+i], checkErr: c.err})
			}
		}
		e.dispatch(a, jobs, left, out[a.lines[0].Lane])
	}
	return deferErr
}

// takenJobs counts the jobs of ts.
func takenJobs(ts []streams.Taken) int {
	n := 0
	for _, t := range ts {
		n += len(t.Jobs)
	}
	return n
}

// dispatch hands a destination's jobs to workers in runs, one run per
// permit: the permit opens the run's first attempt (and its session), and
// each later attempt of the run asks the throttle again as the one before
// it ends (see work). A pack's jobs go in one run (see work). Unused
// permits and worker slots are given back.
func (e *Engine) dispatch(a ask, taken []job, left map[streams.Line]int, out chan<- task) {
	var jobs []job  // filtered: taken is the caller's to give
	var units []int // where each pack (or job of its own) starts in jobs
	for i := 0; i < len(taken); {
		end := packEnd(taken, i)
		if !e.claim(taken[i:end]) {
			i = end
			continue
		}
		units = append(units, len(jobs))
		jobs = append(jobs, taken[i:end]...)
		i = end
	}
	runs := min(len(a.permits), len(units))
	for _, p := range a.permits[runs:] {
		p.Done(unused)
	}
	tasks := make([]task, runs)
	runsOf, jobsOf := map[streams.Line]int{}, map[streams.Line]int{}
	for r := range tasks {
		run := jobs[units[r*len(units)/runs]:]
		if next := (r + 1) * len(units) / runs; next < len(units) {
			run = jobs[units[r*len(units)/runs]:units[next]]
		}
		run[0].permit = a.permits[r]
		for k := range run {
			run[k].via = a.vias[r]
		}
		tasks[r] = task{line: run[0].line, jobs: run}
		for l, n := range perLine(run) {
			runsOf[l]++
			jobsOf[l] += n
		}
	}
	// The runs are in the books before any worker can end one.
	for _, l := range a.lines {
		e.flow.took(l, runsOf[l], jobsOf[l], left[l])
	}
	e.slots.give(a.sessions - runs)
	for _, t := range tasks {
		out <- t
	}
}

// claim puts the jobs of one entry (a pack's, or a job of its own) in the
// in-flight set, all or none.
func (e *Engine) claim(js []job) bool {
	for i, j := range js {
		if !e.inflight.add(j.d) {
			// A worker of this engine holds this job already (it cannot
			// happen without a bug elsewhere): never two attempts at once.
			e.Log.Error("job already in flight; left pending", "job", j.d.ID, "line", j.line.Name())
			for _, k := range js[:i] {
				e.inflight.remove(k.d)
			}
			return false
		}
	}
	return true
}

// perLine counts a run's jobs per line.
func perLine(run []job) map[streams.Line]int {
	n := map[streams.Line]int{}
	for _, j := range run {
		n[j.line]++
	}
	return n
}
