package engine

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// work attempts runs of jobs, transactional ones first whenever any wait:
// a run's jobs one after another (over one reused session), each but the
// first asking the throttle as the one before it ends, and the run's
// outcomes settled together in one step at its end. What the throttle
// will not have soon goes back in its line; jobs not yet started when ctx
// ends (the drain) go back in line for any engine at once.
func (e *Engine) work(ctx, hard context.Context, tx, mk <-chan task) {
	var done []attempted // reused from run to run: an attempted is 350 bytes
	for {
		t, ok := next(tx, mk)
		if !ok {
			return
		}
		done = done[:0]
		var since time.Time
		start, tried := time.Now(), 0
		for i, j := range t.jobs {
			if ctx.Err() != nil {
				if j.permit != nil {
					j.permit.Done(unused)
				}
				e.conclude(hard, j.d, plan{next: stepPostpone, at: e.Now()})
				e.inflight.remove(j.d.ID)
				continue
			}
			if j.permit == nil {
				// The outcomes so far are settled before any wait for
				// the throttle: a paced run's are not held back by it.
				flush := func() { done = e.settleDone(hard, done) }
				if j.permit = e.admitInRun(ctx, t.line, j.via, flush); j.permit == nil {
					e.putBack(hard, t.jobs[i:])
					break
				}
			}
			began := time.Now()
			tried++
			if out, ok := e.process(ctx, hard, j); ok {
				if len(done) == 0 {
					since = began
				}
				done = append(done, attempted{j.d, out})
			} else {
				e.inflight.remove(j.d.ID)
			}
			if time.Since(began) > slowAttempt || time.Since(since) > holdOutcomes {
				done = e.settleDone(hard, done) // a slow receiver's run: one at a time
			}
		}
		done = e.settleDone(hard, done)
		e.slots.give(1)
		var per time.Duration
		if tried > 0 {
			per = time.Since(start) / time.Duration(tried)
		}
		e.finished(t.jobs, per)
	}
}

// A run keeps its outcomes to settle them together at its end, but
// settles what it has at once after an attempt slower than slowAttempt (a
// slow receiver: its outcomes one by one, as they come) or when the first
// of them is older than holdOutcomes: a crash repeats no more of a run
// than that.
const (
	slowAttempt  = 40 * time.Millisecond
	holdOutcomes = 250 * time.Millisecond
)

// settleDone settles a run's outcomes so far in one step and lets their
// jobs go from the in-flight set; it returns done emptied.
func (e *Engine) settleDone(hard context.Context, done []attempted) []attempted {
	if len(done) == 0 {
		return done
	}
	e.settleRun(hard, done)
	for _, a := range done {
		e.inflight.remove(a.d.ID)
	}
	return done[:0]
}

// putBack returns the rest of a run to its lines, waiting out outages.
func (e *Engine) putBack(hard context.Context, rest []job) {
	byLine := map[streams.Line][]streams.Delivery{}
	for _, j := range rest {
		byLine[j.line] = append(byLine[j.line], j.d)
	}
	for l, ds := range byLine {
		e.durably(hard, "put back", ds[0], func(ctx context.Context) error {
			_, err := e.q.PutBack(ctx, l, ds)
			return err
		})
	}
	for _, j := range rest {
		e.inflight.remove(j.d.ID)
	}
}

// next returns the next task, preferring tx; ok is false once both
// channels are closed and empty.
func next(tx, mk <-chan task) (task, bool) {
	for tx != nil || mk != nil {
		select {
		case t, ok := <-tx:
			if ok {
				return t, true
			}
			tx = nil
			continue
		default:
		}
		select {
		case t, ok := <-tx:
			if ok {
				return t, true
			}
			tx = nil
		case t, ok := <-mk:
			if ok {
				return t, true
			}
			mk = nil
		}
	}
	return task{}, false
}
