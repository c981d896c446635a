package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// Sending-domain state: a deferral about our DKIM domain (Gmail's 4.7.28
// DKIM-domain variant, Microsoft's 5.7.515) is about that domain's mail
// toward that destination, from whichever source. It slows no source's
// bucket (pkg/throttle); it makes the (domain, key) bucket
// throttle.DomainBucket hot, and while it is hot every attempt of that
// domain's mail to that key needs a permit of it besides its source's,
// so the domain's mail slows on every source and other domains' mail on
// the same sources keeps its pace. A pair is consulted only once it got
// such a deferral, for domainHot after the last: an unaffected domain
// costs nothing. The engine that got it records the pair's time in Redis
// (throttle.Heat), and every engine reads the hot pairs once a second
// (syncDomains, one round trip): within about a second every engine paces
// the domain, not only the one that was told.

// domainHot is how long a (domain, key) pair is paced by its own bucket
// after its last sending-domain deferral.
const domainHot = time.Hour

// hotEvery is how often an engine reads the pairs made hot by any engine,
// and shareEvery how much later than last recorded a renewed pair's end
// must be for this engine to record it again (a deferral per attempt
// costs no write per attempt).
const (
	hotEvery   = time.Second
	shareEvery = time.Minute
)

// domainGate is the engine's hot (domain, key) buckets.
type domainGate struct {
	n    atomic.Int32 // len(hot): none hot costs an attempt nothing
	mu   sync.Mutex
	hot  map[string]time.Time // bucket → paced until
	wait map[string]time.Time // bucket → no permit before (the throttle's answer)
	// shared is the end of each hot pair as recorded in Redis (by this
	// engine or read from there).
	shared map[string]time.Time
	// seen is when each pair was last recorded here or seen recorded in
	// Redis: a recorded pair gone from there (limits reset) cools here
	// coolAfter later.
	seen map[string]time.Time
}

// coolAfter is how long a recorded pair must be missing from Redis
// before it cools here: longer than a record's write in flight.
const coolAfter = 5 * time.Second

// anyHot reports whether any pair is hot, without a lock.
func (g *domainGate) anyHot() bool { return g.n.Load() > 0 }

func newDomainGate() *domainGate {
	return &domainGate{hot: map[string]time.Time{}, wait: map[string]time.Time{}, shared: map[string]time.Time{}, seen: map[string]time.Time{}}
}

// isHot reports whether bucket paces its domain's mail now.
func (g *domainGate) isHot(bucket string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.hot[bucket]
	if ok && now.After(until) {
		delete(g.hot, bucket)
		g.forgetLocked(bucket)
		return false
	}
	return ok
}

// waiting is when a hot bucket will have a permit again (zero: ask).
func (g *domainGate) waiting(bucket string, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if at := g.wait[bucket]; at.After(now) {
		return at
	}
	return time.Time{}
}

func (g *domainGate) setWait(bucket string, at time.Time) {
	g.mu.Lock()
	g.wait[bucket] = at
	g.mu.Unlock()
}

// heat makes bucket hot for domainHot from now; it reports whether it
// was cold, and whether its new end is to be recorded in Redis (then it
// counts as recorded: unshare it if that fails).
func (g *domainGate) heat(bucket string, now time.Time) (cold, share bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, was := g.hot[bucket]
	until := now.Add(domainHot)
	g.hot[bucket] = until
	g.n.Store(int32(len(g.hot)))
	if until.Sub(g.shared[bucket]) >= shareEvery {
		g.shared[bucket] = until
		g.seen[bucket] = now
		share = true
	}
	return !was, share
}

// unshare forgets that bucket's end was recorded: the next deferral
// records it again.
func (g *domainGate) unshare(bucket string) {
	g.mu.Lock()
	delete(g.shared, bucket)
	delete(g.seen, bucket)
	g.mu.Unlock()
}

// forgetLocked cools bucket. Caller holds g.mu.
func (g *domainGate) forgetLocked(bucket string) {
	delete(g.hot, bucket)
	delete(g.wait, bucket)
	delete(g.shared, bucket)
	delete(g.seen, bucket)
	g.n.Store(int32(len(g.hot)))
}

// merge makes hot the pairs other engines recorded (bucket → hot until),
// each until the later of its two ends, and cools the recorded pairs no
// longer there for coolAfter (a reset); it returns those that were cold,
// and those it cooled.
func (g *domainGate) merge(hot map[string]time.Time, now time.Time) (heated, cooled []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for b := range g.hot {
		if _, ok := hot[b]; ok {
			continue
		}
		if at, rec := g.seen[b]; rec && now.Sub(at) > coolAfter {
			g.forgetLocked(b)
			cooled = append(cooled, b)
		}
	}
	for b, until := range hot {
		g.seen[b] = now
		cur, was := g.hot[b]
		if !was {
			heated = append(heated, b)
		}
		if until.After(cur) {
			g.hot[b] = until
		}
		if until.After(g.shared[b]) {
			g.shared[b] = until
		}
	}
	g.n.Store(int32(len(g.hot)))
	return heated, cooled
}

// syncDomains makes hot here the pairs any engine made hot (one round
// trip); maintain calls it every hotEvery.
func (e *Engine) syncDomains(ctx context.Context) {
	hot, err := throttle.Hot(ctx, e.Redis, e.ks, e.Now())
	if err != nil {
		if ctx.Err() == nil {
			e.Log.Warn("sending domains slowed elsewhere", "err", err)
		}
		return
	}
	heated, cooled := e.egress.domains.merge(hot, e.Now())
	for _, b := range heated {
		dom, _ := throttle.DomainOf(b)
		e.Log.Info("sending domain slowed toward a destination by another engine", "domain", dom, "key", throttle.BaseKey(b))
	}
	for _, b := range cooled {
		dom, _ := throttle.DomainOf(b)
		e.Log.Info("sending domain no longer slowed toward a destination (reset)", "domain", dom, "key", throttle.BaseKey(b))
	}
}

// sendingDomain is the signing (From) domain of d's mail: its campaign's,
// or a ready-made message's envelope sender's.
func (e *Engine) sendingDomain(ctx context.Context, d streams.Delivery) string {
	if d.Campaign == "" {
		return domainOf(d.From)
	}
	if s, err := e.cache.get(ctx, d.Campaign); err == nil {
		return s.domain
	}
	return ""
}

// lineDomainWait is, for a campaign line whose domain's bucket toward
// its key is hot and has no permit now, when it will: the line waits
// rather than hand out runs whose jobs would only go back.
func (e *Engine) lineDomainWait(ctx context.Context, l streams.Line) time.Time {
	if l.Campaign == "" || !e.egress.domains.anyHot() {
		return time.Time{}
	}
	s, err := e.cache.get(ctx, l.Campaign)
	if err != nil || s.domain == "" {
		return time.Time{}
	}
	b := throttle.DomainBucket(l.Key, s.domain)
	now := e.Now()
	if !e.egress.domains.isHot(b, now) {
		return time.Time{}
	}
	return e.egress.domains.waiting(b, now)
}

// domainPermit takes a permit of the hot (domain, key) bucket of t's
// mail for its attempt; ok false (and when to try again) when there is
// none. A cold pair needs none.
func (e *Engine) domainPermit(ctx context.Context, t job) (p *throttle.Permit, at time.Time, ok bool) {
	if !e.egress.domains.anyHot() {
		return nil, time.Time{}, true
	}
	dom := e.sendingDomain(ctx, t.d)
	if dom == "" || t.d.Key == "" {
		return nil, time.Time{}, true
	}
	b := throttle.DomainBucket(t.d.Key, dom)
	if !e.egress.domains.isHot(b, e.Now()) {
		return nil, time.Time{}, true
	}
	p, at, err := e.Throttle.Admit(ctx, b, string(t.d.Lane))
	if err != nil {
		e.Log.Error("throttle", "key", b, "err", err)
		return nil, e.Now().Add(time.Second), false
	}
	if p == nil {
		if soon := e.Now().Add(10 * time.Millisecond); at.Before(soon) {
			at = soon
		}
		e.egress.domains.setWait(b, at)
		return nil, at, false
	}
	return p, time.Time{}, true
}

// domainDone reports an attempt's outcome to its domain's permit, if it
// had one; a sending-domain deferral makes the pair hot, and the first
// one is reported to the pair's bucket at once, so it starts slowed.
func (e *Engine) domainDone(ctx context.Context, t job, v *via, out outcome.Outcome) {
	if p := v.domPermit; p != nil {
		v.domPermit = nil
		p.Done(out)
	}
	if out.Status != outcome.Deferred || out.Scope != outcome.ScopeSendingDomain {
		return
	}
	dom := e.sendingDomain(ctx, t.d)
	if dom == "" || t.d.Key == "" {
		return
	}
	b := throttle.DomainBucket(t.d.Key, dom)
	now := e.Now()
	cold, share := e.egress.domains.heat(b, now)
	if share {
		if err := throttle.Heat(ctx, e.Redis, e.ks, b, now.Add(domainHot), now); err != nil {
			e.egress.domains.unshare(b)
			e.Log.Warn("record a slowed sending domain", "bucket", b, "err", err)
		}
	}
	if !cold {
		return
	}
	e.Log.Warn("sending domain slowed toward a destination", "domain", dom, "key", t.d.Key, "reply", out.Text)
	if p, _, err := e.Throttle.Admit(ctx, b, string(t.d.Lane)); err == nil && p != nil {
		p.Done(out)
	}
}
