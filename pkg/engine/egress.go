package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/throttle"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

// Egress: a run of a line leaves from one source of the line's pool (its
// campaign's pool:, else its lane's). The line server tries the pool's
// sources in a weighted random order and takes the first whose throttle
// bucket toward the line's key grants permits and whose warm-up cap
// toward that provider has room (admitVia); the run carries that source
// (via), its workers bind it, and its later attempts ask the same bucket.
// A source the destination is slowing down, or whose cap is spent, thus
// passes its share to the pool's others within their own limits; with
// none able to send, the line waits for the earliest of them.

// egress is the engine's sources and pools.
type egress struct {
	sources map[string]deliver.Source
	pools   map[string][]poolSource
	// perSource: each source with an address of its own has its own
	// throttle state per key (throttle.Bucket); off, one state per key.
	perSource bool
	warm      *warmup.Warmup
	// totals counts each source's delivered and bounced mail.
	totals *warmup.Totals
	// domains are the (sending domain, key) buckets in use (egress_domain.go).
	domains *domainGate
	// now is the warm-up's clock (Deps.WarmupClock).
	now func() time.Time

	mu     sync.Mutex
	warned map[string]bool // campaigns whose unknown pool was logged
}

// poolSource is one source of a pool and its weight.
type poolSource struct {
	src    deliver.Source
	weight int
}

// via is the source a run leaves from: the throttle bucket its attempts
// ask and, for a ramping source, its warm-up provider.
type via struct {
	src      deliver.Source
	bucket   string
	provider string // the line's key
	ramping  bool
	// spent: the warm-up cap ran out during the run, or its sending
	// domain's bucket has no permit now; its other jobs go back in line
	// (for another source, or for the cap to reset, or the domain's pace).
	spent atomic.Bool
	// domPermit is the current attempt's permit of its sending domain's
	// bucket, while that is hot (egress_domain.go); a run's attempts are
	// one after another.
	domPermit *throttle.Permit
}

// capWait is how soon a job refused by its source's warm-up cap is back
// in line, to leave with another source of the pool or wait there.
const capWait = time.Second

func newEgress(d Deps) *egress {
	cfg := d.Config
	x := &egress{sources: map[string]deliver.Source{}, pools: map[string][]poolSource{},
		perSource: !cfg.Throttle.OneStatePerProvider, now: d.WarmupClock, warned: map[string]bool{}}
	for _, s := range cfg.Sources {
		x.sources[s.Name] = deliver.Source{Name: s.Name, Address: s.Address, EHLO: s.EHLO}
	}
	for _, p := range cfg.Pools {
		for _, ps := range p.Sources {
			if s, ok := x.sources[ps.Source]; ok {
				x.pools[p.Name] = append(x.pools[p.Name], poolSource{src: s, weight: max(ps.Weight, 1)})
			}
		}
	}
	if len(x.pools) == 0 {
		// A hand-built configuration without pools: the default route.
		x.pools[config.DefaultPool] = []poolSource{{src: deliver.Source{Name: config.DefaultSource}, weight: 1}}
	}
	if plans := warmup.Plans(cfg); len(plans) > 0 {
		x.warm = warmup.New(d.Redis, keyspace.Space(cfg.Redis.Prefix), plans)
	}
	if x.now == nil {
		x.now = d.Now
	}
	x.totals = warmup.NewTotals(d.Redis, keyspace.Space(cfg.Redis.Prefix), d.Log)
	x.domains = newDomainGate()
	return x
}

// check binds every source's address once (deliver.CheckSources): a
// source this host cannot send from fails the engine's start, named.
func (x *egress) check() error {
	var srcs []deliver.Source
	for _, s := range x.sources {
		srcs = append(srcs, s)
	}
	if err := deliver.CheckSources(srcs); err != nil {
		return fmt.Errorf("egress sources: %w", err)
	}
	return nil
}

// order returns the pool's sources in a weighted random order: each
// place is drawn by weight among the sources not yet placed.
func order(pool []poolSource) []poolSource {
	left := append([]poolSource(nil), pool...)
	out := make([]poolSource, 0, len(left))
	for len(left) > 0 {
		total := 0
		for _, p := range left {
			total += p.weight
		}
		r := rand.IntN(total)
		i := 0
		for r >= left[i].weight {
			r -= left[i].weight
			i++
		}
		out = append(out, left[i])
		left = append(left[:i], left[i+1:]...)
	}
	return out
}

// viaFor is the via of src toward key.
func (x *egress) viaFor(src deliver.Source, key string) *via {
	v := &via{src: src, bucket: key, provider: key}
	if x.perSource && src.Address != "" {
		v.bucket = throttle.Bucket(key, src.Name)
	}
	v.ramping = x.warm != nil && x.warm.Ramping(src.Name)
	return v
}

// poolOf is the sources l's jobs may leave from: its campaign's pool, else
// its lane's. A campaign naming a pool the configuration lacks (launched
// without -config) sends from its lane's, with a warning.
func (e *Engine) poolOf(ctx context.Context, l streams.Line) []poolSource {
	name := e.lane(l.Lane).Pool
	if l.Campaign != "" {
		if s, err := e.cache.get(ctx, l.Campaign); err == nil && s.pool != "" {
			if _, ok := e.egress.pools[s.pool]; ok {
				name = s.pool
			} else {
				e.egress.warnPool(e, l.Campaign, s.pool, name)
			}
		}
	}
	if p, ok := e.egress.pools[name]; ok {
		return p
	}
	for _, p := range e.egress.pools {
		return p // a lane without a pool: the only one (config.Validate)
	}
	return nil
}

func (x *egress) warnPool(e *Engine, campaign, pool, lane string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.warned[campaign] {
		x.warned[campaign] = true
		e.Log.Warn("campaign names a pool the configuration does not define; sending from its lane's", "campaign", campaign, "pool", pool, "lane_pool", lane)
	}
}

// admitVia finds the source l's next runs leave from and up to n permits
// of its bucket; with none, it returns when to ask again (the earliest
// any source of the pool may send).
func (e *Engine) admitVia(ctx context.Context, l streams.Line, n int) ([]*throttle.Permit, *via, time.Time) {
	if at := e.lineDomainWait(ctx, l); !at.IsZero() {
		return nil, nil, at
	}
	var at time.Time
	sooner := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for _, ps := range order(e.poolOf(ctx, l)) {
		v := e.egress.viaFor(ps.src, l.Key)
		want := n
		if v.ramping {
			room, until := e.warmRoom(ctx, v)
			if room == 0 {
				sooner(until)
				continue
			}
			// A run makes up to perSession attempts, each taking a unit.
			want = min(n, (room+perSession-1)/perSession)
		}
		permits, next := e.admitN(ctx, l, v.bucket, want)
		if len(permits) > 0 {
			return permits, v, time.Time{}
		}
		sooner(next)
	}
	return nil, nil, at
}

// admitSpread admits up to n runs of l, each from a source drawn by weight
// (admitVia), so a pool's sources share a destination's runs as their
// weights say however many runs a poll asks for at once. With none, it
// returns when to ask again.
func (e *Engine) admitSpread(ctx context.Context, l streams.Line, n int) ([]*throttle.Permit, []*via, time.Time) {
	var ps []*throttle.Permit
	var vs []*via
	for len(ps) < n {
		p, v, at := e.admitVia(ctx, l, 1)
		if len(p) == 0 {
			return ps, vs, at
		}
		ps, vs = append(ps, p[0]), append(vs, v)
	}
	return ps, vs, time.Time{}
}

// warmRoom is how many attempts v's source may still start toward its
// provider this hour and day (the cap is taken per attempt, warmTake),
// and, with none, when there will be room again (engine clock).
func (e *Engine) warmRoom(ctx context.Context, v *via) (int, time.Time) {
	now := e.egress.now()
	st, err := e.egress.warm.Advance(ctx, v.src.Name, v.provider, now)
	if err != nil {
		e.Log.Error("warm-up", "source", v.src.Name, "provider", v.provider, "err", err)
		return 0, e.Now().Add(time.Second)
	}
	if !st.Ramping {
		return maxBatchRoom, time.Time{}
	}
	day, hour := st.Cap-st.Sent, st.HourlyCap-st.SentThisHour
	if room := min(day, hour); room > 0 {
		return room, time.Time{}
	}
	next := now.UTC().Truncate(time.Hour).Add(time.Hour)
	if day <= 0 {
		y, m, d := now.UTC().Date()
		next = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
	}
	return 0, e.Now().Add(next.Sub(now))
}

// maxBatchRoom stands for "no cap" in warmRoom.
const maxBatchRoom = 1 << 20

// bucketOf is the throttle bucket a run on l asks: its source's, or the
// line's key for a run without one.
func (v *via) bucketOf(l streams.Line) string {
	if v == nil {
		return l.Key
	}
	return v.bucket
}

// viaPlan binds a prepared attempt to its run's source, takes a permit
// of its sending domain's bucket toward the key while that is hot
// (egress_domain.go) and, for a ramping source, one unit of its warm-up
// cap: without either the job goes back in line (until the domain's next
// permit, or capWait) and the rest of its run after it.
func (e *Engine) viaPlan(ctx context.Context, t job, p plan) plan {
	v := t.via
	if p.next != stepAttempt || v == nil {
		return p
	}
	p.dest.Source = v.src
	dp, at, ok := e.domainPermit(ctx, t)
	if !ok {
		v.spent.Store(true)
		return plan{next: stepPostpone, at: at}
	}
	if v.ramping {
		ok, _, err := e.egress.warm.Allow(ctx, v.src.Name, v.provider, e.egress.now())
		if err != nil || !ok {
			if dp != nil {
				dp.Done(unused)
			}
			if err != nil {
				return e.later(ctx, t.d, "warm-up unreadable", err)
			}
			v.spent.Store(true)
			return plan{next: stepPostpone, at: e.Now().Add(capWait)}
		}
	}
	v.domPermit = dp
	return p
}

// viaDone counts an attempt's outcome into its source's totals
// (warmup.Totals: its delivered and bounced mail, the base of its
// complaint and bounce rates) and, for a ramping source, toward its
// warm-up health figures (warmup.Record).
func (e *Engine) viaDone(ctx context.Context, t job, out outcome.Outcome) {
	v := t.via
	if v == nil {
		return
	}
	e.egress.totals.Note(v.src.Name, out)
	e.domainDone(ctx, t, v, out)
	if !v.ramping {
		return
	}
	if err := e.egress.warm.Record(context.WithoutCancel(ctx), v.src.Name, v.provider, out, e.egress.now()); err != nil {
		e.Log.Error("warm-up record", "source", v.src.Name, "provider", v.provider, "err", err)
	}
}

// isSpent reports whether v's run may not go on (see via.spent).
func (v *via) isSpent() bool { return v != nil && v.spent.Load() }

// slotsOf is the connection slots a permit's attempt takes its session
// from (nil for a permit without them).
func slotsOf(p *throttle.Permit) deliver.Slots {
	if p == nil || p.Sessions == nil {
		return nil
	}
	return p.Sessions
}
