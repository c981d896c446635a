package engine

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// takeoverEvery is how often an engine looks for engines gone silent.
const takeoverEvery = 2 * time.Second

// maintain keeps this engine's heartbeat, moves due retries back into
// their streams and takes over the jobs of engines that have shown no
// sign of life for delivery.reclaim_idle. It runs until hard ends; from
// the drain on (ctx ended) it only beats, so no new work is taken.
//
// An engine takes over only once its own heartbeat has gone through for
// longer than that silence: after a Redis outage every heartbeat looks
// stale, and a live engine must first have had the time to beat again.
func (e *Engine) maintain(ctx, hard context.Context) {
	t := time.NewTicker(e.tick)
	defer t.Stop()
	var lastTakeover, beating time.Time
	for {
		select {
		case <-hard.Done():
			return
		case <-t.C:
		}
		if err := e.q.Beat(hard); err != nil {
			if hard.Err() == nil {
				e.health.failed(err)
				e.Log.Warn("heartbeat", "err", err)
			}
			beating = time.Time{}
			continue
		}
		if beating.IsZero() {
			beating = time.Now()
		}
		if ctx.Err() != nil {
			continue // draining
		}
		if _, err := e.q.MoveDue(ctx, e.Now(), 1000); err != nil && ctx.Err() == nil {
			e.Log.Error("move due retries", "err", err)
		}
		if time.Since(lastTakeover) >= takeoverEvery && time.Since(beating) >= e.Config.Delivery.ReclaimIdle {
			lastTakeover = time.Now()
			e.takeOver(ctx)
		}
	}
}

// takeOver moves every job held by a silent engine into this engine's
// pending list and has the lane's reader hand them out, however many
// there are.
func (e *Engine) takeOver(ctx context.Context) {
	silence := e.Config.Delivery.ReclaimIdle
	for _, l := range streams.Lanes {
		holders, err := e.q.Holders(ctx, l)
		if err != nil {
			if ctx.Err() == nil {
				e.Log.Error("list engines holding jobs", "lane", l, "err", err)
			}
			return
		}
		for _, h := range holders {
			moved, alive, err := e.q.TakeOver(ctx, l, h.Name, silence)
			if err != nil {
				if ctx.Err() == nil {
					e.Log.Error("take over jobs", "lane", l, "from", h.Name, "err", err)
				}
				continue
			}
			if alive || moved == 0 {
				continue
			}
			e.Log.Warn("took over the jobs of a silent engine", "lane", l, "from", h.Name, "jobs", moved, "silent_for_at_least", silence)
			select {
			case e.rescan[l] <- struct{}{}:
			default:
			}
		}
	}
}
