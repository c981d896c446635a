package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
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
// Jobs whose preparation hit a Redis error come back after it too.
const paceRetry = 5 * time.Second

// step is how a job's turn ends.
type step int

const (
	stepAttempt  step = iota // send it, then settle the outcome
	stepSettle               // an outcome reached without sending
	stepPostpone             // back in line until plan.at, no attempt counted
	stepPark                 // its campaign is paused
	stepDrop                 // its campaign was deleted
)

// plan is what preparing a job decided.
type plan struct {
	next   step
	out    outcome.Outcome  // stepSettle
	at     time.Time        // stepPostpone
	permit *throttle.Permit // stepAttempt, and any step after a grant
	dest   deliver.Destination
	env    deliver.Envelope
	msg    []byte
}

// process takes one job through one turn: prepare (operator state,
// suppression, message source, route, throttle, build), then at most one
// attempt, then one way of letting go of it. ctx ending stops preparing;
// only hard (the end of a drain) cuts an attempt short.
func (e *Engine) process(ctx, hard context.Context, d streams.Delivery) {
	p := e.prepare(ctx, d)
	if p.permit != nil {
		if p.next == stepAttempt {
			p.out = e.Sender.Send(hard, p.dest, p.env, p.msg)
			p.next = stepSettle
		}
		p.permit.Done(p.out)
	}
	e.conclude(hard, d, p)
}

// settleWith ends a turn with an outcome that needed no attempt.
func settleWith(out outcome.Outcome) plan { return plan{next: stepSettle, out: out} }

// prepare decides d's turn; every Redis read in it that fails puts the job
// back in line (nothing about the recipient is decided on a failed read).
func (e *Engine) prepare(ctx context.Context, d streams.Delivery) plan {
	if d.Campaign != "" {
		st, err := e.cache.stateOf(ctx, d.Campaign, e.Now())
		if err != nil {
			return e.later(ctx, d, "campaign state unreadable", err)
		}
		switch st {
		case store.StatePaused:
			return plan{next: stepPark}
		case store.StateCancelled:
			return settleWith(outcome.Outcome{Status: outcome.Cancelled, Stage: outcome.StageQueue, Reason: "cancelled"})
		}
	}
	if b, err := e.suppressed(ctx, d); err != nil {
		return e.later(ctx, d, "suppression check failed", err)
	} else if b != nil {
		return settleWith(outcome.Outcome{Status: outcome.Suppressed, Stage: outcome.StageQueue,
			Reason: string(b.Reason), Text: "suppressed: " + string(b.Reason) + " " + b.Detail})
	}
	src, err := e.source(ctx, d)
	var unbuildable *buildError
	switch {
	case errors.Is(err, errCampaignGone):
		return plan{next: stepDrop}
	case errors.As(err, &unbuildable):
		return settleWith(unbuildable.out)
	case err != nil:
		return e.later(ctx, d, "message source unreadable", err)
	}
	dest, out, ok := e.Router.Resolve(ctx, domainOf(d.To))
	if !ok {
		if ctx.Err() != nil {
			return plan{next: stepPostpone, at: e.Now()}
		}
		return settleWith(out)
	}
	key := e.Throttle.Key(dest.Domain, dest.Key, dest.HostNames())
	if e.requireTLS(key) {
		dest.RequireTLS = true
	}
	permit, at := e.admit(ctx, d, key)
	if permit == nil {
		return plan{next: stepPostpone, at: at}
	}
	p := plan{permit: permit, dest: dest}
	p.msg, p.out = src.build(d, e.unsubscribeFor(d))
	if p.out.Status == "" {
		p.msg, p.out = e.sign(src, p.msg)
	}
	if p.out.Status == "" {
		p.env.To = d.To
		p.env.From, p.out = src.sender(d)
	}
	if p.out.Status != "" {
		p.next = stepSettle
		return p
	}
	p.dest.MaxMessagesPerConn = permit.MaxPerConn
	return p
}

// later puts a job back in line after a failed read: soon, or at once
// when the engine is stopping (it was never attempted).
func (e *Engine) later(ctx context.Context, d streams.Delivery, what string, err error) plan {
	if ctx.Err() != nil {
		return plan{next: stepPostpone, at: e.Now()}
	}
	e.health.failed(err)
	e.Log.Error(what+"; job put back in line", "job", d.ID, "err", err)
	return plan{next: stepPostpone, at: e.Now().Add(paceRetry)}
}

// sign adds the DKIM signature for the message's From domain.
func (e *Engine) sign(src *source, msg []byte) ([]byte, outcome.Outcome) {
	if e.Signer == nil {
		return msg, outcome.Outcome{}
	}
	signed, err := e.Signer.Sign(src.domain, msg)
	if err != nil {
		return nil, outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeSender, Stage: outcome.StageBuild, Reason: "dkim", Text: err.Error()}
	}
	return signed, outcome.Outcome{}
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

// admit waits briefly for the throttle. When the wait would be long (or
// the engine is stopping) it returns no permit and when to try again.
func (e *Engine) admit(ctx context.Context, d streams.Delivery, key string) (*throttle.Permit, time.Time) {
	deadline := e.Now().Add(maxAdmitWait)
	for {
		p, at, err := e.Throttle.Admit(ctx, key, string(d.Lane))
		if ctx.Err() != nil {
			if p != nil {
				p.Done(outcome.Outcome{Status: outcome.Deferred, Reason: outcome.Interrupted})
			}
			return nil, e.Now() // stopping: never attempted, back in line now
		}
		if err != nil {
			e.Log.Error("throttle", "key", key, "err", err)
			at = e.Now().Add(time.Second)
		}
		if p != nil {
			return p, time.Time{}
		}
		if at.After(deadline) {
			// Spread the wake-ups of a crowd postponed together.
			return nil, at.Add(time.Duration(rand.Int64N(int64(100 * time.Millisecond))))
		}
		sleep(ctx, at.Sub(e.Now()))
	}
}

// conclude lets go of d as the plan says, waiting out Redis outages.
func (e *Engine) conclude(hard context.Context, d streams.Delivery, p plan) {
	switch p.next {
	case stepSettle:
		e.finish(hard, d, p.out)
	case stepPostpone:
		e.durably(hard, "postpone", d, func(ctx context.Context) error {
			_, err := e.q.Postpone(ctx, d, p.at)
			return err
		})
	case stepPark:
		e.durably(hard, "park", d, func(ctx context.Context) error {
			_, err := e.q.Park(ctx, d, e.store.ParkKey(d.Campaign))
			return err
		})
	case stepDrop:
		e.Log.Warn("dropping a job of a deleted campaign", "job", d.ID, "campaign", d.Campaign)
		e.durably(hard, "drop", d, func(ctx context.Context) error {
			_, err := e.q.Drop(ctx, d)
			return err
		})
	}
}
