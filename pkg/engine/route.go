package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// routeBatch is how many jobs a lane's router reads from one shard at a
// time.
const routeBatch = 64

// bellWait is the longest one wait on a lane's bell blocks (ctx ending is
// noticed after it), and readUnasked how often a router reads its lane's
// shards without a ring (a ring lost in a crash, a writer of an older
// version).
const (
	bellWait    = time.Second
	readUnasked = 30 * time.Second
)

// routeLane moves one lane's jobs into their destinations' lines until
// ctx ends: it reads a batch from every shard (one round trip), settles
// what needs no attempt (cancelled, suppressed, unroutable), parks a
// paused campaign's jobs, drops a deleted campaign's, resolves the rest
// once and moves them in one step per shard. With nothing more to read it
// waits on the lane's bell (one blocking read, whatever the shards). It
// holds nothing between batches, so after a failed read it can safely put
// back whatever the read may have handed it without its knowing.
func (e *Engine) routeLane(ctx, hard context.Context, l streams.Lane) {
	ring := ""
	for ctx.Err() == nil {
		if !e.waitHealthy(ctx) {
			return
		}
		e.sweepLane(ctx, l)
		if ring == "" {
			id, err := e.q.LastRing(ctx, l)
			if err != nil {
				e.health.failed(err)
				sleep(ctx, time.Second)
				continue
			}
			ring = id
		}
		ds, full, err := e.q.Read(ctx, l, routeBatch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.health.failed(err)
			e.Log.Error("read jobs", "lane", l, "err", err)
			sleep(ctx, time.Second)
			// A read whose reply was lost still handed jobs to this
			// consumer: put them back in the lane.
			if _, err := e.q.RequeueOwn(ctx, l); err != nil && ctx.Err() == nil {
				e.Log.Error("put back jobs of a failed read", "lane", l, "err", err)
			}
			continue
		}
		if len(ds) > 0 && e.route(ctx, hard, l, ds) {
			full = true // jobs went back into the lane: read them now
		}
		if !full {
			ring = e.waitRing(ctx, l, ring)
		}
	}
}

// waitRing waits for a ring of lane l after last, or readUnasked, and
// returns the ring to wait after next time ("" after a failure).
func (e *Engine) waitRing(ctx context.Context, l streams.Lane, last string) string {
	t0 := time.Now()
	for ctx.Err() == nil && time.Since(t0) < readUnasked {
		r, err := e.q.Bell(ctx, l, last, bellWait)
		if err != nil {
			if ctx.Err() == nil {
				e.health.failed(err)
				sleep(ctx, time.Second)
			}
			return ""
		}
		if r.Delayed {
			e.q.LookAgain()
		}
		if last = r.ID; r.Rang {
			break
		}
	}
	return last
}

// route decides each job of a batch read from lane l. A job of a pack
// (a launch's entry of several jobs) that needs a step of its own
// (settled, parked, dropped, put off) goes back into the lane as an entry
// of its own in the step that routes the rest of its pack, and gets that
// step when read again: a pack is let go of only as a whole. It reports
// whether jobs went back.
func (e *Engine) route(ctx, hard context.Context, l streams.Lane, ds []streams.Delivery) bool {
	var back goingBack
	ds = e.operatorPass(ctx, hard, ds, &back)
	ds = e.suppressionPass(ctx, hard, ds, &back)
	dests := e.resolve(ctx, ds)
	rs := make([]streams.Routed, 0, len(ds)+len(back))
	throttleKeys := map[string]string{} // by destination domain
	primer := e.primer()
	for _, d := range ds {
		r := dests[domainOf(d.To)]
		if !r.ok {
			if back.take(d) {
				continue
			}
			if ctx.Err() != nil {
				continue // stopping: it stays pending, put back at the next start
			}
			e.settle(hard, d, r.out)
			continue
		}
		key := throttleKeys[r.dest.Domain]
		if key == "" { // once per domain of the batch: HostNames allocates
			key = e.Throttle.Key(r.dest.Domain, r.dest.Key, r.dest.HostNames())
			throttleKeys[r.dest.Domain] = key
		}
		primer.prime(key, l)
		rs = append(rs, streams.Routed{Delivery: d, Line: streams.Line{Shard: d.Shard(), Lane: l, Campaign: d.Campaign, Key: key}})
	}
	routed := len(rs)
	for _, d := range back {
		rs = append(rs, streams.Routed{Delivery: d, Back: true})
	}
	if len(rs) == 0 {
		return false
	}
	if !e.durably(hard, "route", rs[0].Delivery, func(ctx context.Context) error {
		_, err := e.q.Route(ctx, l, rs)
		return err
	}) {
		return false
	}
	e.known.add(rs[:routed])
	if l == streams.Transactional {
		e.pace.hurry()
	}
	e.wake()
	return len(back) > 0
}

// goingBack gathers the jobs of packs that need a step of their own: they
// go back into the lane as entries of their own (see route).
type goingBack []streams.Delivery

// take keeps d for going back when it is a job of a pack, and reports
// whether it did: the caller then leaves d alone.
func (b *goingBack) take(d streams.Delivery) bool {
	if d.Pack <= 1 {
		return false
	}
	*b = append(*b, d)
	return true
}

// operatorPass applies pause, cancel and deletion to a batch and returns
// the jobs still to send; jobs of packs it would act on go to back.
func (e *Engine) operatorPass(ctx, hard context.Context, ds []streams.Delivery, back *goingBack) []streams.Delivery {
	kept := ds[:0]
	for _, d := range ds {
		if d.Campaign == "" {
			kept = append(kept, d)
			continue
		}
		st, err := e.cache.stateOf(ctx, d.Campaign, e.Now())
		if err == nil && st != store.StatePaused && st != store.StateCancelled {
			if _, err = e.cache.get(ctx, d.Campaign); err == nil {
				kept = append(kept, d)
				continue
			}
		}
		if back.take(d) {
			continue
		}
		var unbuildable *buildError
		switch {
		case errors.Is(err, errCampaignGone):
			e.conclude(hard, d, plan{next: stepDrop})
		case errors.As(err, &unbuildable):
			e.conclude(hard, d, settleWith(unbuildable.out))
		case err != nil:
			e.conclude(hard, d, e.later(ctx, d, "campaign unreadable", err))
		case st == store.StatePaused:
			e.conclude(hard, d, plan{next: stepPark})
		default:
			e.conclude(hard, d, settleWith(cancelled))
		}
	}
	return kept
}

var cancelled = outcome.Outcome{Status: outcome.Cancelled, Stage: outcome.StageQueue, Reason: "cancelled"}

// suppressionPass settles the jobs of suppressed recipients (one round
// trip for the batch) and returns the others. When the list cannot be read
// the batch is put back in line. Jobs of packs it would act on go to back.
func (e *Engine) suppressionPass(ctx, hard context.Context, ds []streams.Delivery, back *goingBack) []streams.Delivery {
	if e.Suppression == nil || len(ds) == 0 {
		return ds
	}
	lane := string(ds[0].Lane)
	addrs := make([]string, len(ds))
	for i, d := range ds {
		addrs[i] = d.To
	}
	res, err := e.Suppression.Check(ctx, lane, addrs)
	if err != nil {
		for _, d := range ds {
			if back.take(d) {
				continue
			}
			e.conclude(hard, d, e.later(ctx, d, "suppression check failed", err))
		}
		return nil
	}
	kept := ds[:0]
	for i, d := range ds {
		if b := res[i]; b != nil {
			if back.take(d) {
				continue
			}
			e.settle(hard, d, blockedOutcome(d, b))
			continue
		}
		kept = append(kept, d)
	}
	return kept
}

type resolved struct {
	dest deliver.Destination
	out  outcome.Outcome
	ok   bool
}

// resolveParallel bounds the DNS lookups one batch runs at once.
const resolveParallel = 32

// resolve finds every distinct recipient domain's destination, the
// lookups of a batch in parallel (the long tail of small domains).
func (e *Engine) resolve(ctx context.Context, ds []streams.Delivery) map[string]resolved {
	out := map[string]resolved{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, resolveParallel)
	for _, d := range ds {
		dom := domainOf(d.To)
		mu.Lock()
		_, seen := out[dom]
		if !seen {
			out[dom] = resolved{}
		}
		mu.Unlock()
		if seen {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dest, o, ok := e.Router.Resolve(ctx, dom)
			mu.Lock()
			out[dom] = resolved{dest, o, ok}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
