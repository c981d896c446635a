package engine

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// read feeds one lane's channel until ctx ends. It first hands out this
// consumer's own pending jobs (left by a previous run), page by page and
// once each, then new ones; it reads the pending list again when jobs of
// a dead engine were taken over into it. A full channel blocks only this
// lane's reader. While Redis is unreachable it takes nothing new.
func (e *Engine) read(ctx context.Context, l streams.Lane, out chan<- streams.Delivery, batch int) {
	cursor := "0" // position in the pending list; "" reads new jobs
	for ctx.Err() == nil {
		select {
		case <-e.rescan[l]:
			cursor = "0"
		default:
		}
		if !e.waitHealthy(ctx) {
			return
		}
		var ds []streams.Delivery
		var err error
		if cursor != "" {
			ds, err = e.q.ReadPending(ctx, l, cursor, batch)
			if err == nil {
				if len(ds) == 0 {
					cursor = ""
					continue
				}
				cursor = ds[len(ds)-1].StreamID
				ds, err = e.stillHeld(ctx, l, ds, e.claim(ds))
			}
		} else {
			ds, err = e.q.Read(ctx, l, batch, time.Second)
			ds = e.claim(ds)
		}
		if err != nil {
			if ctx.Err() == nil {
				e.health.failed(err)
				e.Log.Error("read jobs", "lane", l, "err", err)
				sleep(ctx, time.Second)
			}
			// A read whose reply was lost (Redis went away mid-call) may
			// still have given jobs to this consumer: look there first.
			cursor = "0"
			continue
		}
		// Handed over even when stopping: workers drain the channel and
		// give jobs not yet started back to the queue at once.
		for _, d := range ds {
			out <- d
		}
	}
}

// claim marks ds as held by this engine's workers and keeps those no
// worker holds already.
func (e *Engine) claim(ds []streams.Delivery) []streams.Delivery {
	kept := make([]streams.Delivery, 0, len(ds))
	for _, d := range ds {
		if e.inflight.add(d.ID) {
			kept = append(kept, d)
		}
	}
	return kept
}

// stillHeld keeps the claimed pending jobs this consumer has not
// acknowledged since they were read, and lets go of the others: a job a
// worker settled between the read and its claim must not be sent again.
// (Claim first, check second: a worker lets go of a job only after
// acknowledging it, so a job claimed here is either still pending or
// already gone from the pending list when checked.)
func (e *Engine) stillHeld(ctx context.Context, l streams.Lane, read, claimed []streams.Delivery) ([]streams.Delivery, error) {
	held, err := e.q.Held(ctx, l, read)
	kept := claimed[:0]
	for _, d := range claimed {
		if err == nil && held[d.StreamID] {
			kept = append(kept, d)
		} else {
			e.inflight.remove(d.ID)
		}
	}
	return kept, err
}

// inflight is the set of job ids held by this engine's workers (or queued
// for them): whatever the cause, a job is never in two workers at once.
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
