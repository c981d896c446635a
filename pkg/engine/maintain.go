package engine

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// takeoverEvery is how often an engine looks for engines gone silent,
// and holdersEvery how often for consumers holding jobs without a
// heartbeat (engines of an older version; a look at every shard's lanes).
const (
	takeoverEvery = 2 * time.Second
	holdersEvery  = 30 * time.Second
)

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
	var lastTakeover, lastGauge, lastHot, lastPeers, beating time.Time
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
		if time.Since(lastPeers) >= peersEvery {
			lastPeers = time.Now()
			e.packLines(ctx)
		}
		if time.Since(lastHot) >= hotEvery-e.tick/2 {
			lastHot = time.Now()
			e.syncDomains(ctx)
		}
		if time.Since(lastGauge) >= depthEvery && scraped(time.Now()) {
			lastGauge = time.Now()
			e.gauge(ctx)
		}
		if time.Since(lastTakeover) >= takeoverEvery && time.Since(beating) >= e.Config.Delivery.ReclaimIdle {
			lastTakeover = time.Now()
			e.takeOver(ctx)
		}
	}
}

// takeOver puts back in line every job held by an engine silent for
// delivery.reclaim_idle, in the lanes and in every line, however many:
// they are attempted again once, by whichever engine gets to them.
// Engines too old to beat a heartbeat are found through the lanes' groups.
func (e *Engine) takeOver(ctx context.Context) {
	silence := e.Config.Delivery.ReclaimIdle
	silent, err := e.q.Silent(ctx, silence)
	if err != nil {
		if ctx.Err() == nil {
			e.Log.Error("list silent engines", "err", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, name := range silent {
		seen[name] = true
	}
	if time.Since(e.holdersAt) >= holdersEvery {
		e.holdersAt = time.Now()
		for _, l := range streams.Lanes {
			holders, err := e.q.Holders(ctx, l)
			if err != nil {
				continue
			}
			for _, h := range holders {
				if !seen[h.Name] {
					seen[h.Name] = true
					silent = append(silent, h.Name) // checked again by TakeOver
				}
			}
		}
	}
	for _, name := range silent {
		moved, alive := 0, false
		for _, l := range streams.Lanes {
			n, a, err := e.q.TakeOver(ctx, l, name, silence)
			if err != nil {
				e.Log.Error("take over jobs", "from", name, "lane", l, "err", err)
				return
			}
			moved, alive = moved+n, alive || a
		}
		if alive {
			continue
		}
		err := e.q.Lines(ctx, func(l streams.Line) error {
			n, a, err := e.q.TakeOverLine(ctx, l, name, silence)
			moved, alive = moved+n, alive || a
			return err
		})
		if err != nil {
			e.Log.Error("take over jobs", "from", name, "err", err)
			return
		}
		if alive {
			continue
		}
		if err := e.q.Forget(ctx, name, silence); err != nil {
			e.Log.Error("forget a silent engine", "engine", name, "err", err)
		}
		if moved > 0 {
			e.Log.Warn("put back in line the jobs of a silent engine", "from", name, "jobs", moved, "silent_for_at_least", silence)
			e.wake()
		}
	}
}

// peersEvery is how often an engine looks at what the others read
// (packLines).
const peersEvery = 10 * time.Second

// packLines has this engine's routes put a campaign's jobs into lines as
// packs only while every engine that beat within the last minute reads
// them (streams.ReadsLinePacks): an engine from before them would take a
// pack for one job and let its other jobs go unsent. Unread (Redis
// unanswering), it leaves things as they are.
func (e *Engine) packLines(ctx context.Context) {
	lacking, err := e.q.Lacking(ctx, time.Minute, streams.ReadsLinePacks)
	if err != nil {
		return
	}
	if on := len(lacking[0]) == 0; e.q.PackLines(on) {
		if on {
			e.Log.Info("every engine reads packs in lines: routing a campaign's jobs in packs")
		} else {
			e.Log.Warn("an engine of an older version runs: routing a job an entry until it stops", "engines", lacking[0])
		}
	}
}
