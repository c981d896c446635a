package engine

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/metrics"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/text"
)

// attempted is a job of a run with the outcome to settle, or (back) a
// job of a pack its run did not attempt, to go back in its line.
type attempted struct {
	d    streams.Delivery
	out  outcome.Outcome
	back bool
	line streams.Line
}

// settle records the outcome and acknowledges the job; a deferral is
// rescheduled (or expires) in the same step — unless the attempt was cut
// short by the end of a drain: then the job stays pending for the next
// start. Redis outages are waited out.
func (e *Engine) settle(hard context.Context, d streams.Delivery, out outcome.Outcome) {
	e.settleRun(hard, []attempted{{d: d, out: out}})
}

// settleRun settles the outcomes of a run's jobs (one line's: one shard)
// in one step, each hard bounce's suppression entry written first. An
// attempt cut short by the end of a drain is not settled: its job stays
// pending for the next start. Redis outages are waited out.
func (e *Engine) settleRun(hard context.Context, as []attempted) {
	now := e.Now()
	ss := make([]streams.Settlement, 0, len(as))
	outs := make([]outcome.Outcome, 0, len(as))
	var left map[string]bool // packs with a job staying pending: they stay whole
	leave := func(d streams.Delivery) {
		if d.Pack > 1 {
			if left == nil {
				left = map[string]bool{}
			}
			left[d.Stream+" "+d.StreamID] = true
		}
	}
	for i, a := range as {
		if a.back {
			line := a.line
			ss = append(ss, streams.Settlement{D: a.d, Tally: e.tally(a.d.Job), Back: true, Line: &line})
			outs = append(outs, a.out)
			continue
		}
		if hard.Err() != nil && a.out.Status == outcome.Deferred {
			leave(a.d)
			continue
		}
		s := e.settlement(a.d, a.out, now)
		// The suppression entry is part of the outcome: it is written
		// before the job is acknowledged, so a crash in between repeats
		// both.
		expired := s.Rec.Reason == "expired"
		if e.suppresses(a.out, expired) && !e.durably(hard, "record suppression", a.d, func(ctx context.Context) error {
			return e.recordSuppression(ctx, a.d, a.out, expired, now)
		}) {
			for _, r := range as[i:] { // the drain ended: this one and the rest stay pending
				leave(r.d)
			}
			break
		}
		ss, outs = append(ss, s), append(outs, a.out)
	}
	if len(left) > 0 {
		kept := 0
		for k := range ss {
			if d := ss[k].D; d.Pack <= 1 || !left[d.Stream+" "+d.StreamID] {
				ss[kept], outs[kept] = ss[k], outs[k]
				kept++
			}
		}
		ss, outs = ss[:kept], outs[:kept]
	}
	if len(ss) == 0 {
		return
	}
	var res []streams.Settled
	t0 := time.Now()
	if !e.durably(hard, "settle", ss[0].D, func(ctx context.Context) (err error) {
		res, err = e.q.SettleRun(ctx, ss)
		return err
	}) {
		return
	}
	took := time.Since(t0).Seconds()
	for i, s := range ss {
		if s.Back {
			continue
		}
		settleSeconds.Observe(took) // each job's outcome took that to record
		e.settled(s, outs[i], res[i])
	}
}

// settlement is what settling d with out writes: its record, and for a
// deferral within the lane's max age the next attempt (past it, the job
// ends bounced, reason expired; the recipient is not suppressed for it,
// as it says nothing certain about the address).
func (e *Engine) settlement(d streams.Delivery, out outcome.Outcome, now time.Time) streams.Settlement {
	s := streams.Settlement{D: d, Tally: e.tally(d.Job), Rec: streams.Record{
		Status: string(out.Status), Code: out.Code, Enhanced: out.Enhanced, Reply: text.Clip(out.Text, 400),
		Reason: out.Reason, Host: out.Host, Attempts: d.Attempts + 1, At: now.UnixMilli(), Line: d.Line, JobID: d.ID,
		Earlier: d.History, Src: out.Source, Prov: d.Key,
	}}
	if out.Status != outcome.Deferred {
		return s
	}
	lane := e.lane(d.Lane)
	s.RetryAt = now.Add(retryDelay(lane, d.Attempts, out))
	if first := time.UnixMilli(d.First); d.First > 0 && s.RetryAt.Sub(first) > lane.MaxAge {
		s.Rec.Status, s.Rec.Reason = string(outcome.Bounced), "expired"
		return s
	}
	j := d.Job
	j.Attempts++
	j.History = s.Rec.NextEarlier()
	s.Next = &j
	return s
}

// settled counts and logs what settling s did.
func (e *Engine) settled(s streams.Settlement, out outcome.Outcome, res streams.Settled) {
	d, rec := s.D, s.Rec
	if res == streams.Recorded {
		metrics.Settled(d.Campaign, rec.Status, rec.Reason)
	}
	if res == streams.NotHeld {
		// Taken over by another engine after this one fell silent, or
		// settled by an earlier try whose reply was lost: nothing recorded.
		e.Log.Warn("job no longer held by this engine; outcome not recorded", "job", d.ID, "status", out.Status)
	}
	msg, level, retry := string(out.Status), slog.LevelInfo, s.Next != nil
	switch {
	case out.Status == outcome.Delivered:
		level = slog.LevelDebug
	case rec.Reason == "expired":
		msg, retry = "expired", false
	}
	if !e.Log.Enabled(context.Background(), level) {
		return // a delivered message's attributes are not built for nothing
	}
	attrs := append([]any{"job", d.ID, "to", d.To, "attempt", d.Attempts + 1}, out.LogAttrs()...)
	if retry {
		attrs = append(attrs, "retry_at", s.RetryAt)
	}
	e.Log.Log(context.Background(), level, msg, attrs...)
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
