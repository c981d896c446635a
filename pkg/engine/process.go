package engine

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
)

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
	next step
	out  outcome.Outcome // stepSettle
	at   time.Time       // stepPostpone
	dest deliver.Destination
	env  deliver.Envelope
	// msg is a campaign job's message, composed of pieces some of which
	// it owns: released when the job's turn ends, never before, so parts
	// stay valid through every host its one attempt tries.
	msg   *message.Message
	parts [][]byte // what is sent: DKIM-Signature fields, then the message
}

// process takes one job through one turn: prepare (operator state,
// suppression, message source, route, build), then at most one attempt
// under the permit its line was served with, then one way of letting go
// of it — but an outcome to settle is returned (settle) for the run's one
// settle step, and a job of a pack that needs a step of its own (put off,
// parked, dropped) is left to its run (back), which puts it back in line
// with the rest of its pack: a pack is let go of whole. ctx ending stops
// preparing; only hard (the end of a drain) cuts an attempt short.
func (e *Engine) process(ctx, hard context.Context, t job) (out outcome.Outcome, settle, back bool) {
	p := e.prepare(ctx, t)
	defer p.msg.Release()    // whatever the plan becomes below
	p = e.viaPlan(ctx, t, p) // the run's source; a spent warm-up cap: back in line
	if p.next == stepAttempt {
		p.dest.MaxMessagesPerConn = t.permit.MaxPerConn
		p.dest.Slots = slotsOf(t.permit)
		p.out = e.Sender.SendParts(hard, p.dest, p.env, p.parts)
		p.next = stepSettle
		t.permit.Done(p.out)
		e.viaDone(ctx, t, p.out)
	} else {
		t.permit.Done(unused) // no attempt: the permit goes back
	}
	if p.next == stepSettle {
		return p.out, true, false
	}
	if t.d.Pack > 1 {
		return outcome.Outcome{}, false, true
	}
	e.conclude(hard, t.d, p)
	return outcome.Outcome{}, false, false
}

// unused completes a permit no attempt was made under.
var unused = outcome.Outcome{Status: outcome.Deferred, Reason: outcome.Interrupted}

// settleWith ends a turn with an outcome that needed no attempt.
func settleWith(out outcome.Outcome) plan { return plan{next: stepSettle, out: out} }

// prepare decides a job's turn; every Redis read in it that fails puts the
// job back in line (nothing about the recipient is decided on a failed
// read).
func (e *Engine) prepare(ctx context.Context, t job) plan {
	d := t.d
	if d.Campaign != "" {
		st, err := e.cache.stateOf(ctx, d.Campaign, e.Now())
		if err != nil {
			return e.later(ctx, d, "campaign state unreadable", err)
		}
		switch st {
		case store.StatePaused:
			return plan{next: stepPark}
		case store.StateCancelled:
			return settleWith(cancelled)
		}
	}
	if t.checkErr != nil {
		return e.later(ctx, d, "suppression check failed", t.checkErr)
	}
	if b := t.suppressed; b != nil {
		return settleWith(blockedOutcome(d, b))
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
	// Routed when it entered its line; resolved again here from the MX
	// cache for the hosts to connect to.
	dest, out, ok := e.Router.Resolve(ctx, domainOf(d.To))
	if !ok {
		if ctx.Err() != nil {
			return plan{next: stepPostpone, at: e.Now()}
		}
		return settleWith(out)
	}
	if e.requireTLS(d.Key) {
		dest.RequireTLS = true
	}
	p := plan{dest: dest}
	p.msg, p.parts, p.out = src.build(d, e.unsubscribeFor(d))
	if p.out.Status == "" {
		p.parts, p.out = e.sign(src, p.parts)
	}
	if p.out.Status == "" {
		p.env.To = d.To
		p.env.From, p.out = src.sender(d)
	}
	if p.out.Status != "" {
		p.next = stepSettle
	}
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

// sign puts the DKIM signatures for the message's From domain in front of
// its pieces; the pieces themselves are hashed, not joined.
func (e *Engine) sign(src *source, parts [][]byte) ([][]byte, outcome.Outcome) {
	if e.Signer == nil {
		return parts, outcome.Outcome{}
	}
	sigs, err := e.Signer.SignParts(src.domain, parts)
	if err != nil {
		return nil, outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeSender, Stage: outcome.StageBuild, Reason: "dkim", Text: err.Error()}
	}
	if len(sigs) == 0 {
		return parts, outcome.Outcome{}
	}
	return append(append(make([][]byte, 0, len(parts)+1), sigs), parts...), outcome.Outcome{}
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

// conclude lets go of d as the plan says, waiting out Redis outages.
func (e *Engine) conclude(hard context.Context, d streams.Delivery, p plan) {
	switch p.next {
	case stepSettle:
		e.settle(hard, d, p.out)
	case stepPostpone:
		e.durably(hard, "postpone", d, func(ctx context.Context) error {
			_, err := e.q.Postpone(ctx, d, p.at)
			return err
		})
	case stepPark:
		e.durably(hard, "park", d, func(ctx context.Context) error {
			_, err := e.q.Park(ctx, d, e.store.ParkKey(d.Campaign, d.Shard()))
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
