package engine

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// task is one job taken from its line with the throttle's permit for it.
type task struct {
	d      streams.Delivery
	permit *throttle.Permit
	// suppressed is the entry blocking the recipient (checked for the
	// whole batch when it was taken), checkErr why it could not be.
	suppressed *suppression.Entry
	checkErr   error
}

// maxWait bounds how long a line is left alone on the throttle's word: a
// suspension lifted by hand, say, is noticed by then at the latest (an
// operator's `limits set` or `reset` wakes the key's lines at once).
const maxWait = 30 * time.Second

// idleWait is the longest the line server sleeps when nothing is due.
const idleWait = 200 * time.Millisecond

// serveLines is the line server: it reads the lines that are due, asks
// the throttle how many attempts each line's key may start now, takes
// that many jobs and hands them to idle workers. A line whose key may not
// send is scored with the time it may, and not read before (no worker
// ever waits on the throttle, and a suspended line costs nothing).
// Transactional lines are served first.
func (e *Engine) serveLines(ctx, hard context.Context, out map[streams.Lane]chan task) {
	for ctx.Err() == nil {
		if !e.waitHealthy(ctx) {
			return
		}
		if !e.slots.wait(ctx) {
			return
		}
		lines, err := e.q.Due(ctx, e.Now(), 512)
		if err != nil {
			if ctx.Err() == nil {
				e.health.failed(err)
				e.Log.Error("due lines", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		if len(lines) == 0 {
			e.sleepUntilDue(ctx)
			continue
		}
		sort.SliceStable(lines, func(i, j int) bool {
			return lines[i].Lane == streams.Transactional && lines[j].Lane != streams.Transactional
		})
		later := map[streams.Line]time.Time{}
		for _, l := range lines {
			if l.Campaign != "" && !e.campaignSends(ctx, l, later) {
				continue
			}
			n := e.slots.take(e.Config.Delivery.Workers)
			if n == 0 {
				break
			}
			permits, at := e.admitN(ctx, l, n)
			e.slots.give(n - len(permits))
			if len(permits) == 0 {
				if limit := e.Now().Add(maxWait); at.IsZero() || at.After(limit) {
					at = limit
				}
				later[l] = at
				continue
			}
			e.take(ctx, hard, l, permits, out[l.Lane])
		}
		if err := e.q.Defer(ctx, later); err != nil && ctx.Err() == nil {
			e.Log.Error("reschedule lines", "err", err)
		}
		e.waiting.note(later)
	}
}

// campaignSends reports whether line l's campaign is sending. A paused
// campaign's line is left alone (resume wakes it); a cancelled one's jobs
// are settled as cancelled without the throttle's leave, a batch at a
// time; a deleted one's line goes.
func (e *Engine) campaignSends(ctx context.Context, l streams.Line, later map[streams.Line]time.Time) bool {
	st, err := e.cache.stateOf(ctx, l.Campaign, e.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.Log.Warn("dropping the jobs of a deleted campaign", "line", l.Name())
		if err := e.q.DropLine(ctx, l); err != nil {
			e.Log.Error("drop line", "line", l.Name(), "err", err)
		}
		return false
	case err != nil:
		later[l] = e.Now().Add(paceRetry)
		return false
	case st == store.StatePaused:
		later[l] = e.Now().Add(maxWait)
		return false
	case st == store.StateCancelled:
		if _, err := e.q.CancelLine(ctx, l, e.store.Tally(l.Campaign), 500); err != nil && ctx.Err() == nil {
			e.Log.Error("cancel waiting jobs", "line", l.Name(), "err", err)
			later[l] = e.Now().Add(paceRetry)
		}
		return false
	}
	return true
}

// admitN asks the throttle for up to n permits for l's key; with none, it
// returns when to ask again.
func (e *Engine) admitN(ctx context.Context, l streams.Line, n int) ([]*throttle.Permit, time.Time) {
	var ps []*throttle.Permit
	for len(ps) < n {
		p, at, err := e.Throttle.Admit(ctx, l.Key, string(l.Lane))
		if err != nil {
			e.Log.Error("throttle", "key", l.Key, "err", err)
			return ps, e.Now().Add(time.Second)
		}
		if p == nil {
			return ps, at
		}
		ps = append(ps, p)
	}
	return ps, time.Time{}
}

// take reads up to len(permits) jobs of line l and hands each, with a
// permit, to a worker; unused permits and worker slots are given back.
func (e *Engine) take(ctx, hard context.Context, l streams.Line, permits []*throttle.Permit, out chan<- task) {
	ds, err := e.q.Take(ctx, l, len(permits))
	if err != nil && ctx.Err() == nil {
		e.health.failed(err)
		e.Log.Error("take jobs", "line", l.Name(), "err", err)
		e.putBackLost(ctx, l)
	}
	blocked, checkErr := e.checkBatch(ctx, l.Lane, ds)
	for i, d := range ds {
		if !e.inflight.add(d.ID) {
			// A worker of this engine holds this job already (it cannot
			// happen without a bug elsewhere): never two attempts at once.
			e.Log.Error("job already in flight; left pending", "job", d.ID, "line", l.Name())
			permits[i].Done(outcome.Outcome{Status: outcome.Deferred, Reason: outcome.Interrupted})
			e.slots.give(1)
			continue
		}
		out <- task{d: d, permit: permits[i], suppressed: blocked[i], checkErr: checkErr}
	}
	for _, p := range permits[len(ds):] {
		p.Done(outcome.Outcome{Status: outcome.Deferred, Reason: outcome.Interrupted})
	}
	e.slots.give(len(permits) - len(ds))
}

// checkBatch checks the recipients of a batch taken from a line against
// the suppression list in one round trip: an address suppressed while its
// job waited in line is not sent to.
func (e *Engine) checkBatch(ctx context.Context, l streams.Lane, ds []streams.Delivery) ([]*suppression.Entry, error) {
	blocked := make([]*suppression.Entry, len(ds))
	if e.Suppression == nil || len(ds) == 0 {
		return blocked, nil
	}
	addrs := make([]string, len(ds))
	for i, d := range ds {
		addrs[i] = d.To
	}
	res, err := e.Suppression.Check(ctx, string(l), addrs)
	if err != nil {
		return blocked, err
	}
	return res, nil
}

// putBackLost puts back in line the jobs of l a lost reply may have given
// this consumer: those of its pending ones that no worker holds, each
// claimed first and checked still pending, so none is ever held twice.
func (e *Engine) putBackLost(ctx context.Context, l streams.Line) {
	ds, err := e.q.ReadPendingLine(ctx, l, "0", 500)
	if err != nil {
		return // the next failure, or the next start, tries again
	}
	var mine []streams.Delivery
	for _, d := range ds {
		if e.inflight.add(d.ID) {
			mine = append(mine, d)
		}
	}
	if n, err := e.q.PutBack(ctx, l, mine); err == nil && n > 0 {
		e.Log.Warn("put back jobs of a lost reply", "line", l.Name(), "jobs", n)
	}
	for _, d := range mine {
		e.inflight.remove(d.ID)
	}
}

// sleepUntilDue waits for the earliest line to come due, a wake-up from a
// router, or idleWait.
func (e *Engine) sleepUntilDue(ctx context.Context) {
	d := idleWait
	if at, err := e.q.NextDue(ctx); err == nil && !at.IsZero() {
		d = min(d, max(at.Sub(e.Now()), time.Millisecond))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-e.wakeup:
	case <-t.C:
	}
}

// raised makes the lines this engine scored for later on key due now: the
// key's rate went up or its suspension ended (see throttle.OnRaise).
func (e *Engine) raised(key string) {
	ls := e.waiting.take(key)
	if len(ls) == 0 {
		return
	}
	now := map[streams.Line]time.Time{}
	for _, l := range ls {
		now[l] = e.Now()
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := e.q.Defer(ctx, now); err == nil {
		e.wake()
	}
}

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

// wake tells the line server new jobs are in line.
func (e *Engine) wake() {
	select {
	case e.wakeup <- struct{}{}:
	default:
	}
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
