package engine

import (
	"context"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/metrics"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/text"
)

// finish settles the outcome, unless the attempt was cut short by the
// end of a drain: then the job stays pending for the next start.
func (e *Engine) finish(hard context.Context, d streams.Delivery, out outcome.Outcome) {
	if hard.Err() != nil && out.Status == outcome.Deferred {
		return
	}
	e.settle(hard, d, out)
}

// settle records the outcome and acknowledges the job; a deferral is
// rescheduled (or expires) in the same step. Redis outages are waited out.
func (e *Engine) settle(hard context.Context, d streams.Delivery, out outcome.Outcome) {
	now := e.Now()
	rec := streams.Record{
		Status: string(out.Status), Code: out.Code, Enhanced: out.Enhanced, Reply: text.Clip(out.Text, 400),
		Reason: out.Reason, Host: out.Host, Attempts: d.Attempts + 1, At: now.UnixMilli(), Line: d.Line, JobID: d.ID,
		Earlier: d.History, Src: out.Source,
	}
	var next *streams.Job
	var retryAt time.Time
	if out.Status == outcome.Deferred {
		lane := e.lane(d.Lane)
		retryAt = now.Add(retryDelay(lane, d.Attempts, out))
		if first := time.UnixMilli(d.First); d.First > 0 && retryAt.Sub(first) > lane.MaxAge {
			// Past the lane's max age the job ends; the recipient is not
			// suppressed for it (it says nothing certain about the address).
			rec.Status, rec.Reason = string(outcome.Bounced), "expired"
		} else {
			j := d.Job
			j.Attempts++
			j.History = rec.NextEarlier()
			next = &j
		}
	}
	// The suppression entry is part of the outcome: it is written before
	// the job is acknowledged, so a crash in between repeats both.
	if !e.durably(hard, "record suppression", d, func(ctx context.Context) error {
		return e.recordSuppression(ctx, d, out, rec.Reason == "expired", now)
	}) {
		return
	}
	var res streams.Settled
	t0 := time.Now()
	defer func() { settleSeconds.Observe(time.Since(t0).Seconds()) }()
	if !e.durably(hard, "settle", d, func(ctx context.Context) (err error) {
		res, err = e.q.Settle(ctx, d, e.tally(d.Job), rec, next, retryAt)
		return err
	}) {
		return
	}
	if res == streams.Recorded {
		metrics.Settled(d.Campaign, rec.Status, rec.Reason)
	}
	if res == streams.NotHeld {
		// Taken over by another engine after this one fell silent, or
		// settled by an earlier try whose reply was lost: nothing recorded.
		e.Log.Warn("job no longer held by this engine; outcome not recorded", "job", d.ID, "status", out.Status)
	}
	attrs := append([]any{"job", d.ID, "to", d.To, "attempt", d.Attempts + 1}, out.LogAttrs()...)
	switch {
	case out.Status == outcome.Delivered:
		e.Log.Debug("delivered", attrs...)
	case rec.Reason == "expired":
		e.Log.Info("expired", attrs...)
	case next != nil:
		e.Log.Info(string(out.Status), append(attrs, "retry_at", retryAt)...)
	default:
		e.Log.Info(string(out.Status), attrs...)
	}
}

// retryDelay is the wait before the next attempt: short for a provider's
// pacing signal, else the receiver's own hint ("try again in 5 minutes"),
// else the lane's schedule (the last step repeats); with ±10% jitter so
// retries of one burst spread out.
func retryDelay(l config.Lane, attempts int, out outcome.Outcome) time.Duration {
	d := out.RetryAfter
	switch {
	case d > 0:
	case out.Scope.Paces() || out.Scope == outcome.ScopeConnection:
		d = paceRetry
	default:
		d = l.Retry[min(attempts, len(l.Retry)-1)]
	}
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

func (e *Engine) lane(l streams.Lane) config.Lane {
	if l == streams.Transactional {
		return e.Config.Lanes.Transactional
	}
	return e.Config.Lanes.Marketing
}

func (e *Engine) tally(j streams.Job) streams.Tally {
	if j.Campaign != "" {
		return e.store.Tally(j.Campaign)
	}
	return streams.TransactionalTally(e.ks, time.UnixMilli(j.First))
}

func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}
