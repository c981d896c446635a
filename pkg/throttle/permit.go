package throttle

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Permit allows one delivery attempt to a key.
type Permit struct {
	Key string
	// MaxPerConn is how many messages one SMTP session may carry.
	MaxPerConn int
	// Sessions counts the key's sessions in this engine and holds them
	// to the connection slots it leases: the attempt's session, dialled
	// or taken from a pool, takes one (deliver.Destination.Slots).
	Sessions *Sessions
	done     func(outcome.Outcome)
	once     sync.Once
}

// Done reports the attempt's outcome and frees the permit's connection.
// Only the first call counts.
func (p *Permit) Done(out outcome.Outcome) { p.once.Do(func() { p.done(out) }) }

// eventOf says what an outcome tells the throttle, from its Scope (the
// reply was classified once, at the edge; it is not re-parsed here):
// a provider-scoped deferral is a pacing signal for the rate; a refused
// session ("421 Too many sessions" at greeting, a refused TCP connection)
// is one for the connections. Recipient-scoped deferrals (4.2.1 receiving
// too fast, 4.2.2 mailbox full) say nothing about the provider's pace and
// change nothing, and neither does an attempt sluice cut short itself.
func eventOf(o outcome.Outcome) string {
	if o.Status != outcome.Deferred || o.Reason == outcome.Interrupted {
		return ""
	}
	switch {
	case o.Scope.Paces() && o.Code != 0:
		return evRate
	case o.Scope == outcome.ScopeConnection && (o.Stage == outcome.StageGreeting || o.Stage == outcome.StageHello):
		return evConn
	case o.Scope == outcome.ScopeHost && o.Stage == outcome.StageConnect && strings.Contains(o.Text, "connection refused"):
		return evConn
	}
	return ""
}

// eventTimeout bounds the step that reports an event from Done.
const eventTimeout = 2 * time.Second

func (l *Limiter) done(b *bucket, tx bool, granted time.Time, out outcome.Outcome) {
	now := l.now()
	ev := eventOf(out)
	if _, dom := DomainOf(b.key); ev == evRate && out.Scope == outcome.ScopeSendingDomain && !dom {
		ev = "" // about the domain, not this source: its DomainBucket slows
	}
	// The reply's text is built for rules to match or a step to report,
	// not for every delivered message.
	var text string
	if len(b.rules) > 0 || ev != "" {
		text = replyText(out)
	}
	var matched []*rule
	if text != "" {
		for _, r := range b.rules {
			if r.re.MatchString(text) {
				matched = append(matched, r)
			}
		}
	}
	took := now.Sub(granted)
	send := ev != "" || len(matched) > 0
	if send {
		b.stepMu.Lock() // one step of a bucket at a time (see step.go)
	}

	b.mu.Lock()
	b.inUse--
	if out.Reason != outcome.Interrupted {
		switch out.Status {
		case outcome.Delivered:
			b.counts.ok++
			b.acc.add(now)
		case outcome.Deferred:
			b.counts.def++
		case outcome.Bounced:
			b.counts.bounce++
		case outcome.Failed:
			b.counts.fail++
		}
		if out.Stage != outcome.StageBuild {
			b.latency = 0.8*b.latency + 0.2*took.Seconds()
		}
	}
	if ev == evConn {
		b.capSessions(now)
	}
	if ev == evRate {
		// Slots leased at the rate that was just refused would keep
		// overshooting for another lease horizon.
		b.txSlots, b.mkSlots = nil, nil
		b.lease[0].next, b.lease[1].next = time.Time{}, time.Time{}
	}
	var q stepReq
	if send {
		if text == "" {
			text = out.Text
		}
		q = stepReq{report: b.snapshot(now), event: ev, text: text, rules: matched}
	}
	b.mu.Unlock()

	observe(b, out, took, matched)
	if !send {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	res, err := l.step(ctx, b, q)
	b.mu.Lock()
	if err != nil {
		l.log.Error("throttle event", "key", b.key, "event", ev, "err", err)
		b.counts.add(q.report)
		b.mu.Unlock()
		b.stepMu.Unlock()
		return
	}
	l.applyStep(b, res, l.now(), "")
	if len(matched) > 0 || res.suspended > 0 {
		l.log.Warn("throttle rule", "key", b.key, "rules", ruleNames(matched), "state", res.state,
			"suspended_for", res.suspended.Round(time.Second), "rate", res.rate, "reply", text)
	}
	b.mu.Unlock()
	b.stepMu.Unlock()
}

func ruleNames(rs []*rule) []string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Name)
	}
	return s
}
