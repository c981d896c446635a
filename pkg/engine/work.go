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
//
// A run holds whole packs (entries of several jobs of one line,
// streams.LinePack), and a pack is let go of in one step: its outcomes
// are settled together (held through the run's short waits for the
// throttle), and when its run stops short of its end (a slow receiver,
// outcomes older than holdOutcomes, a job needing a step of its own, the
// throttle's "not soon", the drain) its jobs not attempted go back in
// line as entries of their own in the same step as its attempted ones'
// outcomes.
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
		jobs := t.jobs
		for i := 0; i < len(jobs); i++ {
			j := jobs[i]
			if ctx.Err() != nil {
				if j.permit != nil {
					j.permit.Done(unused)
				}
				done = e.giveUp(hard, jobs[i:], done)
				break
			}
			if j.permit == nil {
				// The outcomes so far are settled before any wait for
				// the throttle, so a paced run's are not held back by it
				// — but a pack's under way, which wait for its end or
				// holdOutcomes (a pack is settled whole).
				flush := func() { done = e.settleBefore(hard, done, jobs, i) }
				if j.permit = e.admitInRun(ctx, t.line, j.via, flush); j.permit == nil {
					done = e.giveUp(hard, jobs[i:], done)
					break
				}
			}
			began := time.Now()
			tried++
			out, settle, back := e.process(ctx, hard, j)
			switch {
			case settle:
				if len(done) == 0 {
					since = began
				}
				done = append(done, attempted{d: j.d, out: out})
			case back: // a job of a pack that needs a step of its own
				end := packEnd(jobs, i)
				done = e.settleBack(hard, done, jobs[i:end])
				i = end - 1
				continue
			default:
				e.inflight.remove(j.d)
			}
			if time.Since(began) > slowAttempt || time.Since(since) > holdOutcomes {
				// A slow receiver's run: outcomes one by one, as they
				// come, and the rest of a pack goes back as single jobs.
				end := packEnd(jobs, i)
				done = e.settleBack(hard, done, jobs[i+1:end])
				i = end - 1
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

// packEnd is the index after the last job of jobs[i]'s pack (i+1 for a
// job of its own): a run holds a pack's jobs one after another.
func packEnd(jobs []job, i int) int {
	end := i + 1
	if jobs[i].d.Pack > 1 {
		for end < len(jobs) && jobs[end].d.StreamID == jobs[i].d.StreamID && jobs[end].d.Stream == jobs[i].d.Stream {
			end++
		}
	}
	return end
}

// underWay reports whether jobs[i] is of a pack some of whose jobs the
// run has attempted (their outcomes last in done).
func underWay(jobs []job, i int, done []attempted) bool {
	if jobs[i].d.Pack <= 1 || len(done) == 0 {
		return false
	}
	last := done[len(done)-1].d
	return last.StreamID == jobs[i].d.StreamID && last.Stream == jobs[i].d.Stream
}

// settleBefore settles done before the run waits for jobs[i]'s permit,
// but for the outcomes of the pack under way (jobs[i]'s), which it keeps.
func (e *Engine) settleBefore(hard context.Context, done []attempted, jobs []job, i int) []attempted {
	keep := len(done)
	if underWay(jobs, i, done) {
		for keep > 0 && done[keep-1].d.StreamID == jobs[i].d.StreamID && done[keep-1].d.Stream == jobs[i].d.Stream {
			keep--
		}
	}
	if keep == 0 {
		return done
	}
	rest := append([]attempted(nil), done[keep:]...)
	return append(e.settleDone(hard, done[:keep]), rest...)
}

// settleDone settles a run's outcomes so far in one step and lets their
// jobs go from the in-flight set; it returns done emptied. No pack may be
// under way (settleBack cuts one short, settleBefore keeps its outcomes).
func (e *Engine) settleDone(hard context.Context, done []attempted) []attempted {
	if len(done) == 0 {
		return done
	}
	e.settleRun(hard, done)
	for _, a := range done {
		e.inflight.remove(a.d)
	}
	return done[:0]
}

// settleBack settles done with back, the jobs of a pack its run will not
// attempt (none: done alone), which go back in their line as jobs of
// their own in the same step, and wakes the line server for them (their
// line is due now, which its last poll did not see); it returns done
// emptied.
func (e *Engine) settleBack(hard context.Context, done []attempted, back []job) []attempted {
	for _, j := range back {
		done = append(done, attempted{d: j.d, back: true, line: j.line})
		e.inflight.goingBack(j.d)
	}
	done = e.settleDone(hard, done)
	if len(back) > 0 {
		e.wake()
	}
	return done
}

// giveUp ends a run early at rest, its jobs not attempted: the pack under
// way (its outcomes in done) goes back with them in one step, then the
// rest goes back in its lines (packs whole). It returns done emptied.
func (e *Engine) giveUp(hard context.Context, rest []job, done []attempted) []attempted {
	if len(rest) > 0 && underWay(rest, 0, done) {
		end := packEnd(rest, 0)
		done, rest = e.settleBack(hard, done, rest[:end]), rest[end:]
	}
	done = e.settleDone(hard, done)
	e.putBack(hard, rest)
	return done
}

// putBack returns the rest of a run to its lines, waiting out outages.
func (e *Engine) putBack(hard context.Context, rest []job) {
	byLine := map[streams.Line][]streams.Delivery{}
	for _, j := range rest {
		byLine[j.line] = append(byLine[j.line], j.d)
		e.inflight.goingBack(j.d)
	}
	for l, ds := range byLine {
		e.durably(hard, "put back", ds[0], func(ctx context.Context) error {
			_, err := e.q.PutBack(ctx, l, ds)
			return err
		})
	}
	for _, j := range rest {
		e.inflight.remove(j.d)
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
