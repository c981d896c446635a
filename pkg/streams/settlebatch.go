package streams

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// settleBatcher lets the runs of a queue's workers that end while
// another run's settle is on its way to Redis share the next round trip
// (a group commit): the first to come leads, settles every run waiting
// when it starts in one pipeline — the runs of one line in one script
// call — and hands the lead to the first run that came meanwhile. A run
// that ends alone is settled at once, as before; when runs end faster
// than Redis answers, round trips and script calls grow fewer instead of
// queueing. Each run still waits for its own outcomes to be recorded
// before its worker goes on, so what a crash can repeat is unchanged.
type settleBatcher struct {
	mu    sync.Mutex
	busy  bool          // a leader is settling
	queue []*settleWait // runs waiting for the next round trip
}

// settleWait is one SettleRun call waiting in the batcher.
type settleWait struct {
	ss   []Settlement
	out  []Settled
	err  error
	lead bool // woken to lead the next round trip rather than with its result
	done chan struct{}
}

// maxSettleItems bounds the items of one settle script call (its
// arguments are unpacked in Lua, whose stack is bounded), but for the rest
// of a pack: up to LinePack more.
const maxSettleItems = 200

// SettleRun settles the outcomes of a run of jobs, each as Settle would,
// in one atomic step per stream holding them and records hash (one for a
// run of one line; a destination's lines in several shards give a run a
// step per line), the steps in one pipelined round trip, shared with the
// runs of other workers that end meanwhile (see settleBatcher). It
// returns what it did for each, in order.
func (q *Queue) SettleRun(ctx context.Context, ss []Settlement) ([]Settled, error) {
	w := &settleWait{ss: ss, done: make(chan struct{})}
	b := &q.settles
	b.mu.Lock()
	b.queue = append(b.queue, w)
	if b.busy {
		b.mu.Unlock()
		<-w.done
		if !w.lead {
			return w.out, w.err
		}
		b.mu.Lock()
	}
	b.busy = true
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()

	q.settleAll(ctx, batch)

	b.mu.Lock()
	if len(b.queue) > 0 {
		next := b.queue[0]
		next.lead = true
		close(next.done)
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	return w.out, w.err
}

// settleAll settles the runs of ws in one pipelined round trip, the items
// of one stream and records hash in one script call (up to
// maxSettleItems), and wakes each run's worker with its results. A call
// that fails fails every run with an item in it (their workers try again:
// settling twice changes nothing).
func (q *Queue) settleAll(ctx context.Context, ws []*settleWait) {
	type item struct {
		w  *settleWait
		at int // in w.ss
	}
	type group struct {
		stream, records string
		items           []item
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for _, w := range ws {
		w.out = make([]Settled, len(w.ss))
		if w.err = checkRun(w.ss); w.err != nil {
			continue
		}
		for i := range w.ss {
			s := &w.ss[i]
			key := [2]string{q.held(s.D), s.Tally.In(s.D.Shard()).Records}
			g := byKey[key]
			// A full call takes the rest of an entry still (a pack's items
			// are consecutive): a pack is let go of in one step.
			if g == nil || len(g.items) >= maxSettleItems && !sameEntry(g.items[len(g.items)-1].w.ss[g.items[len(g.items)-1].at].D, s.D) {
				g = &group{stream: key[0], records: key[1]}
				byKey[key] = g
				groups = append(groups, g)
			}
			g.items = append(g.items, item{w, i})
		}
	}
	calls := make([]scriptCall, 0, len(groups))
	nexts := make([]time.Time, 0, len(groups))
	kept := groups[:0]
	for _, g := range groups {
		ss := make([]*Settlement, len(g.items))
		for k, it := range g.items {
			ss[k] = &it.w.ss[it.at]
		}
		c, next, err := q.settleCall(ss)
		if err != nil {
			for _, it := range g.items {
				it.w.err = err
			}
			continue
		}
		calls, nexts, kept = append(calls, c), append(nexts, next), append(kept, g)
	}
	for k, c := range q.runAllReplicated(ctx, settleRunScript, calls) {
		g := kept[k]
		first := g.items[0].w.ss[g.items[0].at].D
		res, err := c.Int64Slice()
		if err == nil && len(res) != len(g.items) {
			err = fmt.Errorf("%d results", len(res))
		}
		if err != nil {
			err = fmt.Errorf("settle a run of %d jobs (%s...): %w", len(g.items), first.ID, err)
			for _, it := range g.items {
				it.w.err = err
			}
			continue
		}
		for i, it := range g.items {
			it.w.out[it.at] = Settled(res[i])
		}
		if !nexts[k].IsZero() {
			q.due.note(q.Delayed(first.Shard(), first.Lane), nexts[k])
		}
	}
	for _, w := range ws {
		if !w.lead { // a leader's was closed to hand it the lead
			close(w.done)
		}
	}
}

// checkRun reports a settlement of ss that cannot be settled: a deferral
// without its next attempt.
func checkRun(ss []Settlement) error {
	for _, s := range ss {
		if s.Rec.Status == string(outcome.Deferred) && s.Next == nil {
			return fmt.Errorf("settle %s: deferred without a next attempt", s.D.ID)
		}
	}
	return nil
}

// sameEntry reports whether a and b were read from one stream entry.
func sameEntry(a, b Delivery) bool { return a.StreamID == b.StreamID && a.Stream == b.Stream }
