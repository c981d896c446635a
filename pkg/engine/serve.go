package engine

import (
	"context"
	"errors"
	"maps"
	"sort"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// task is a run of jobs of one destination (from one or more of its
// lines) for one worker, attempted one after another (over one reused
// session, as a connection pulling from its destination's queue would),
// each under its own throttle permit.
type task struct {
	line streams.Line // its first job's: the destination's key and lane
	jobs []job
}

// job is one delivery of a task with its permit.
type job struct {
	d      streams.Delivery
	line   streams.Line // the line it was taken from
	permit *throttle.Permit
	// suppressed is the entry blocking the recipient (checked for the
	// whole batch when it was taken), checkErr why it could not be.
	suppressed *suppression.Entry
	checkErr   error
	// via is the egress source its run leaves from (egress.go).
	via *via
}

// maxWait bounds how long a line is left alone on the throttle's word: a
// suspension lifted by hand, say, is noticed by then at the latest (an
// operator's `limits set` or `reset` wakes the key's lines at once).
const maxWait = 30 * time.Second

// idleWait is the longest the line server sleeps when nothing is due: how
// soon it sees lines made due by others (other engines' routers,
// campaignctl's resume or limits). Its own router and workers wake it at
// once.
const idleWait = time.Second

// pollLines bounds how many of each shard's earliest lines one poll
// reads: twice the idle workers, at least 2 (a line may not send), at
// most 64 — a poll with one worker free reads a handful, not hundreds.
func (e *Engine) pollLines() int { return min(max(2*e.slots.idle(), 2), 64) }

// serveLines is the line server: it reads the lines that are due, asks
// the throttle how many attempts each line's key may start now, takes
// that many jobs and hands them to idle workers. A line whose key may not
// send is scored with the time it may, and not read before (no worker
// ever waits on the throttle, and a suspended line costs nothing).
// Transactional lines are served first.
func (e *Engine) serveLines(ctx, hard context.Context, out map[streams.Lane]chan task) {
	// carry are the lines a round with nothing to take scored for later:
	// the next poll writes them first, in its round trip.
	var carry map[streams.Line]time.Time
	for ctx.Err() == nil {
		if !e.waitHealthy(ctx) {
			return
		}
		e.sweepLines(ctx)
		if !e.slots.wait(ctx) {
			return
		}
		e.pace.wait(ctx, e.inflight.len())
		// The poll's round trip first writes carry (but for the lines a
		// raise made due since) and makes due again the lines passed
		// over for their attempts in flight, one of which has ended
		// since; if it fails, the next poll does.
		e.waiting.keep(carry)
		woken := e.flow.woken()
		first := make(map[streams.Line]time.Time, len(carry)+len(woken))
		maps.Copy(first, carry)
		maps.Copy(first, woken)
		lines, next, err := e.q.Poll(ctx, e.Now(), e.pollLines(), first)
		if err != nil {
			e.flow.wakeAgain(woken)
			if ctx.Err() == nil {
				e.health.failed(err)
				e.Log.Error("due lines", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		carry = nil
		if len(lines) == 0 {
			e.sleepUntil(ctx, next)
			continue
		}
		sort.SliceStable(lines, func(i, j int) bool {
			return lines[i].Lane == streams.Transactional && lines[j].Lane != streams.Transactional
		})
		later := map[streams.Line]time.Time{}
		used := map[streams.Line]bool{}
		asks, rest := e.asksOf(ctx, lines, used, later)
		asks = e.admitAll(ctx, asks, later)
		if len(rest) > 0 && e.slots.idle() > 0 {
			// The worker slots ran out for asks the throttle did not
			// fill (a paced destination wants more sessions than it
			// may open): the lines after them are asked for now.
			more, _ := e.asksOf(ctx, rest, used, later)
			asks = append(asks, e.admitAll(ctx, more, later)...)
		}
		// The takes and the lines scored for later: one round trip.
		if len(asks) == 0 {
			carry = later
		} else if err := e.takeAll(ctx, asks, out, later); err != nil && ctx.Err() == nil {
			e.Log.Error("reschedule lines", "err", err)
		}
		e.waiting.note(later)
	}
}

// asksOf makes the asks for due lines, reserving worker slots for the
// sessions each wants, until the slots run out: it returns the asks and
// the lines left for want of slots.
func (e *Engine) asksOf(ctx context.Context, lines []streams.Line, used map[streams.Line]bool, later map[streams.Line]time.Time) ([]ask, []streams.Line) {
	var asks []ask
	for i, l := range lines {
		if used[l] || (l.Campaign != "" && !e.campaignSends(ctx, l, later)) {
			continue
		}
		fresh := !e.flow.knows(l)
		sessions := e.flow.want(l)
		if sessions == 0 {
			// Enough attempts on it already: the next to end wakes it.
			later[l] = e.Now().Add(maxWait)
			continue
		}
		n := e.slots.take(sessions)
		if n == 0 {
			return asks, lines[i:]
		}
		a := ask{lines: []streams.Line{l}, sessions: n}
		used[l] = true
		if fresh {
			a.lines = e.widen(ctx, a.lines, used, later)
		}
		asks = append(asks, a)
	}
	return asks, nil
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

// admitN asks the throttle for up to n permits of bucket (l's key, or
// its source's bucket toward it); with none, it returns when to ask again.
func (e *Engine) admitN(ctx context.Context, l streams.Line, bucket string, n int) ([]*throttle.Permit, time.Time) {
	var ps []*throttle.Permit
	for len(ps) < n {
		p, at, err := e.Throttle.Admit(ctx, bucket, string(l.Lane))
		if err != nil {
			e.Log.Error("throttle", "key", bucket, "err", err)
			return ps, e.Now().Add(time.Second)
		}
		if p == nil {
			return ps, at
		}
		ps = append(ps, p)
	}
	return ps, time.Time{}
}

// runWait is the longest a worker waits for the throttle between two
// attempts of a run (the next send slot of a paced key); a longer wait
// puts the rest of the run back in its line.
const runWait = 100 * time.Millisecond

// admitInRun asks the throttle for the next attempt of a run on l, from
// the run's source v (none once v's warm-up cap is spent); before it
// waits (or gives up), it calls beforeWait.
func (e *Engine) admitInRun(ctx context.Context, l streams.Line, v *via, beforeWait func()) *throttle.Permit {
	for ctx.Err() == nil && !v.isSpent() {
		p, at, err := e.Throttle.Admit(ctx, v.bucketOf(l), string(l.Lane))
		if p != nil {
			return p
		}
		beforeWait()
		if err != nil || at.Sub(e.Now()) > runWait {
			return nil
		}
		sleep(ctx, at.Sub(e.Now()))
	}
	return nil
}

// checkBatch checks the recipients of a batch taken from a line against
// the suppression list in one round trip: an address suppressed while its
// job waited in line is not sent to.
func (e *Engine) checkBatch(ctx context.Context, l streams.Lane, addrs []string) ([]*suppression.Entry, error) {
	blocked := make([]*suppression.Entry, len(addrs))
	if e.Suppression == nil || len(addrs) == 0 {
		return blocked, nil
	}
	res, err := e.Suppression.Check(ctx, string(l), addrs)
	if err != nil {
		return blocked, err
	}
	return res, nil
}

// sleepUntil waits for the earliest line to come due (at; zero: none
// waits), a wake-up from a router or a worker, or idleWait.
func (e *Engine) sleepUntil(ctx context.Context, at time.Time) {
	d := idleWait
	if e.IdleWait > 0 {
		d = e.IdleWait
	}
	if !at.IsZero() {
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

// wake tells the line server new jobs are in line.
func (e *Engine) wake() {
	select {
	case e.wakeup <- struct{}{}:
	default:
	}
}

// finished ends a run in this engine's books, for each line it took jobs
// from; a line passed over for the runs it had going is woken by the line
// server.
func (e *Engine) finished(run []job, per time.Duration) {
	wake := false
	for l, n := range perLine(run) {
		wake = e.flow.finished(l, n, per) || wake
	}
	if wake {
		e.wake()
	}
}
