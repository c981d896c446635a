package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/text"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// maxAdmitWait is how long a worker waits for the throttle before it puts
// the job back in line: short waits (a token due in a few ms, a session
// slot about to free) are cheaper in place than a round trip to Redis;
// long ones would hold the worker from every other provider.
const maxAdmitWait = time.Second

// paceRetry is how soon a job comes back after a provider-scoped deferral
// (421 4.7.28, TSS04, 454 Throttling...): it is a pacing signal for the
// throttle, not the recipient's failure, so it does not wait out the
// minutes-long retry schedule. A suspension makes Admit hold it longer.
const paceRetry = 5 * time.Second

// process makes one delivery attempt and settles its outcome.
func (e *Engine) process(ctx context.Context, d streams.Delivery) {
	src, out, err := e.source(ctx, d)
	if errors.Is(err, errGone) {
		e.Log.Warn("dropping a job of a deleted campaign", "job", d.ID, "campaign", d.Campaign)
		if _, err := e.q.Drop(context.WithoutCancel(ctx), d); err != nil {
			e.Log.Error("drop failed; job stays pending", "job", d.ID, "err", err)
		}
		return
	}
	if out.Status != "" {
		e.finish(ctx, d, out)
		return
	}
	if d.Campaign != "" && !e.operatorAllows(ctx, d) {
		return
	}
	if blocked, ok := e.suppressed(ctx, d); !ok {
		return
	} else if blocked != nil {
		e.finish(ctx, d, outcome.Outcome{Status: outcome.Suppressed, Stage: outcome.StageQueue,
			Reason: string(blocked.Reason), Text: "suppressed: " + string(blocked.Reason) + " " + blocked.Detail})
		return
	}
	dest, out, ok := e.Router.Resolve(ctx, domainOf(d.To))
	if !ok {
		e.finish(ctx, d, out)
		return
	}
	key := e.Throttle.Key(dest.Domain, dest.Key, dest.HostNames())
	if e.requireTLS(key) {
		dest.RequireTLS = true
	}
	permit, ok := e.admit(ctx, d, key)
	if !ok {
		return
	}
	msg, out := src.build(d, e.unsubscribeFor(d))
	if out.Status != "" {
		permit.Done(out)
		e.finish(ctx, d, out)
		return
	}
	if e.Signer != nil {
		var err error
		if msg, err = e.Signer.Sign(src.domain, msg); err != nil {
			out = outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeSender, Stage: outcome.StageBuild, Reason: "dkim", Text: err.Error()}
			permit.Done(out)
			e.finish(ctx, d, out)
			return
		}
	}
	from, out := src.sender(d)
	if out.Status != "" {
		permit.Done(out)
		e.finish(ctx, d, out)
		return
	}
	dest.MaxMessagesPerConn = permit.MaxPerConn
	out = e.Sender.Send(ctx, dest, deliver.Envelope{From: from, To: d.To}, msg)
	permit.Done(out)
	e.finish(ctx, d, out)
}

// operatorAllows applies a campaign's pause or cancel: a paused campaign's
// job is parked (kept, not lost, resumed by campaignctl resume), a cancelled
// one's is settled as cancelled. It reports whether to go on sending.
func (e *Engine) operatorAllows(ctx context.Context, d streams.Delivery) bool {
	st, err := e.cache.stateOf(ctx, d.Campaign, e.Now())
	if err != nil {
		if ctx.Err() == nil {
			e.Log.Error("campaign state unreadable; job postponed", "job", d.ID, "err", err)
			_, _ = e.q.Postpone(context.WithoutCancel(ctx), d, e.Now().Add(paceRetry))
		}
		return false
	}
	switch st {
	case store.StatePaused:
		if _, err := e.q.Park(context.WithoutCancel(ctx), d, e.store.ParkKey(d.Campaign)); err != nil {
			e.Log.Error("park failed; job stays pending", "job", d.ID, "err", err)
		}
		return false
	case store.StateCancelled:
		e.finish(ctx, d, outcome.Outcome{Status: outcome.Cancelled, Stage: outcome.StageQueue, Reason: "cancelled"})
		return false
	}
	return true
}

// requireTLS reports whether the provider behind key must not be sent to
// in plaintext: from the throttle's merged limits (shipped providers file,
// config, overrides) when it has them, else from the config.
func (e *Engine) requireTLS(key string) bool {
	if l, ok := e.Throttle.(interface{ Limits(string) config.Limits }); ok {
		return l.Limits(key).RequireTLS
	}
	return e.Config.Throttle.Providers[key].RequireTLS
}

// admit waits briefly for the throttle; when the wait would be long it
// postpones the job (durably, no attempt counted) and reports false.
func (e *Engine) admit(ctx context.Context, d streams.Delivery, key string) (*throttle.Permit, bool) {
	deadline := e.Now().Add(maxAdmitWait)
	for {
		p, at, err := e.Throttle.Admit(ctx, key, string(d.Lane))
		if err != nil {
			e.Log.Error("throttle", "key", key, "err", err)
			at = e.Now().Add(time.Second)
		}
		if p != nil {
			return p, true
		}
		if at.After(deadline) {
			// Spread the wake-ups of a crowd postponed together.
			at = at.Add(time.Duration(rand.Int64N(int64(100 * time.Millisecond))))
			if _, err := e.q.Postpone(context.WithoutCancel(ctx), d, at); err != nil {
				e.Log.Error("postpone failed; job stays pending", "job", d.ID, "err", err)
			}
			return nil, false
		}
		sleep(ctx, at.Sub(e.Now()))
		if ctx.Err() != nil {
			return nil, false // stopping: the job stays pending for the next start
		}
	}
}

// finish settles the outcome, unless the attempt was cut short by shutdown.
func (e *Engine) finish(ctx context.Context, d streams.Delivery, out outcome.Outcome) {
	if ctx.Err() != nil && out.Status == outcome.Deferred {
		// Interrupted by shutdown: leave the job pending; the next start
		// of this engine reads it again.
		return
	}
	// A final answer is recorded even while stopping: it happened.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	e.settle(sctx, d, out)
}

// settle records the outcome and acknowledges the job; a deferral is
// rescheduled (or expires) in the same step.
func (e *Engine) settle(ctx context.Context, d streams.Delivery, out outcome.Outcome) {
	now := e.Now()
	rec := streams.Record{
		Status: string(out.Status), Code: out.Code, Enhanced: out.Enhanced, Reply: text.Clip(out.Text, 400),
		Reason: out.Reason, Host: out.Host, Attempts: d.Attempts + 1, At: now.UnixMilli(), Line: d.Line, JobID: d.ID,
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
			next = &j
		}
	}
	// The suppression entry is part of the outcome: it is written before
	// the job is acknowledged, so a crash in between repeats both.
	if err := e.recordSuppression(ctx, d, out, rec.Reason == "expired", now); err != nil {
		e.Log.Error("recording suppression failed; job stays pending", "job", d.ID, "to", d.To, "err", err)
		return
	}
	for try := 0; ; try++ {
		res, err := e.q.Settle(ctx, d, e.tally(d.Job), rec, next, retryAt)
		if err == nil {
			if res == streams.NotHeld {
				e.Log.Warn("job was reclaimed by another engine before it settled", "job", d.ID)
			}
			break
		}
		if try == 4 || ctx.Err() != nil {
			// Not acknowledged: the job stays pending and is delivered again
			// after a restart or reclaim (at-least-once).
			e.Log.Error("settle failed; job stays pending", "job", d.ID, "err", err)
			return
		}
		sleep(ctx, time.Duration(100<<try)*time.Millisecond)
	}
	attrs := append([]any{"job", d.ID, "to", d.To, "attempt", d.Attempts + 1}, out.LogAttrs()...)
	switch {
	case out.Status == outcome.Delivered:
		e.Log.Debug("delivered", attrs...)
	case rec.Reason == "expired":
		e.Log.Info("expired", attrs...)
	default:
		e.Log.Info(string(out.Status), append(attrs, "retry_at", retryAt)...)
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
	case out.Scope == outcome.ScopeProvider || out.Scope == outcome.ScopeConnection:
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

var errNoSource = errors.New("job has neither a campaign nor a stored message")
