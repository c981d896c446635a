package engine

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// sweepEvery is how often an engine puts back in line the jobs Redis says
// it holds but none of its workers has. Such a job is one whose settle
// (or route) a failover lost: the promoted replica never saw the
// acknowledgement, so the job is pending for this consumer again, and
// nothing else would read it before the engine's next start. Also swept:
// jobs a lost reply handed over unknown. So a lost settle costs at most
// one more attempt, never a stuck job.
const sweepEvery = 10 * time.Second

// sweepRetry is how soon a sweep that failed is tried again.
const sweepRetry = time.Second

// sweeps time the sweeps: one clock for the lines (run by the line
// server) and one per lane (run by its router), each due every sweepEvery,
// sooner after a failed sweep, and at once when a Redis error streak
// (see health) ended since it last began.
type sweeps struct {
	mu     sync.Mutex
	clocks map[string]*sweepClock
}

type sweepClock struct {
	next  time.Time // not before
	began time.Time // the last sweep that went through began then
}

// due reports whether the sweep named what is due; failedAt is when the
// last Redis error streak began (zero: none yet).
func (s *sweeps) due(what string, now, failedAt time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clocks == nil {
		s.clocks = map[string]*sweepClock{}
	}
	c := s.clocks[what]
	if c == nil {
		// The start put back everything the previous run held.
		c = &sweepClock{next: now.Add(sweepEvery), began: now}
		s.clocks[what] = c
	}
	if failedAt.After(c.began) && c.next.After(now.Add(sweepRetry)) {
		c.next = now // a streak of errors since the last sweep: now, but no faster than retries
	}
	return !now.Before(c.next)
}

// done records a sweep begun at began and ended now: the next is due
// sweepEvery after began, or sweepRetry after now when this one failed.
func (s *sweeps) done(what string, began, now time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clocks[what]
	if ok {
		c.began, c.next = began, began.Add(sweepEvery)
	} else {
		c.next = now.Add(sweepRetry)
	}
}

// sweepDue reports whether the sweep named what should run now: its time
// has come, or Redis failed since it last ran and answers again.
func (e *Engine) sweepDue(what string) bool {
	err, since := e.health.state()
	return err == nil && e.sweeps.due(what, time.Now(), since)
}

// sweepLines puts back in line, in every line, the jobs this consumer
// holds that no worker of this engine has. It runs in the line server,
// between two rounds, so no job it takes is on its way to a worker.
func (e *Engine) sweepLines(ctx context.Context) {
	if !e.sweepDue("lines") {
		return
	}
	began, moved := time.Now(), 0
	err := e.q.Lines(ctx, func(l streams.Line) error {
		n, err := e.putBackLost(ctx, l)
		moved += n
		if err != nil && strings.Contains(err.Error(), "NOGROUP") {
			return nil // the line went away meanwhile
		}
		return err
	})
	e.sweeps.done("lines", began, time.Now(), err == nil)
	if moved > 0 {
		e.Log.Warn("put back in line jobs held in Redis but by no worker (a settle lost in a failover, or a lost reply)", "jobs", moved)
		e.wake()
	}
}

// sweepLane puts back in lane l the jobs this consumer holds there. It runs
// in l's router between two batches, when the router holds nothing: any
// job read from the lane then is one whose route a failover lost, or
// whose read's reply was lost.
func (e *Engine) sweepLane(ctx context.Context, l streams.Lane) {
	what := "lane " + string(l)
	if !e.sweepDue(what) {
		return
	}
	began := time.Now()
	n, err := e.q.RequeueOwn(ctx, l)
	e.sweeps.done(what, began, time.Now(), err == nil)
	if n > 0 {
		e.Log.Warn("put back in its lane jobs read but never routed (a route lost in a failover, or a lost reply)", "lane", l, "jobs", n)
	}
}

// putBackLost puts back in line the jobs of l this consumer holds that no
// worker holds, however many: each claimed first in the in-flight set
// and checked still pending by the put-back script, so none is ever held
// twice. It returns how many went back.
func (e *Engine) putBackLost(ctx context.Context, l streams.Line) (int, error) {
	moved, after := 0, "0"
	for {
		ds, err := e.q.ReadPendingLine(ctx, l, after, 500)
		if err != nil || len(ds) == 0 {
			return moved, err
		}
		after = ds[len(ds)-1].StreamID
		var mine []streams.Delivery
		for _, d := range ds {
			if e.inflight.add(d) {
				mine = append(mine, d)
			}
		}
		n, err := e.q.PutBack(ctx, l, mine)
		for _, d := range mine {
			e.inflight.remove(d)
		}
		if moved += n; err != nil {
			return moved, err
		}
	}
}
