// Package throttle paces delivery per provider, adaptively and across
// engines. Destinations roll up into keys: a mailbox provider recognised by
// its MX hosts or domains (providers.yaml), else the destination's own MX
// host set. Every key has a message rate, a burst, a connection limit and
// messages per connection, with start/min/max values.
//
// The state of a key lives in Redis, shared by every engine: the current
// rate and concurrency, a GCRA for the rate, suspensions, caps and
// operator overrides (see step.lua). An engine leases send slots in
// batches covering 100 ms of the rate, and reports outcomes every 250 ms,
// so a message costs a fraction of a Redis call; only deferrals that
// change the state are sent at once.
//
// Admit never blocks: it grants a Permit or says when to try again, so the
// engine can put a job for a throttled or suspended provider back in line
// instead of holding a worker. Every Permit is completed with the
// attempt's Outcome, which is what adaptation (adapt.go), response rules
// (rules.go) and the metrics feed on.
package throttle

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Options configure a Limiter.
type Options struct {
	Redis redis.UniversalClient
	Space keyspace.Space
	// Engine names this engine in the shared state (the stream consumer
	// name); engines sharing a key split its connections.
	Engine string
	Config config.Throttle
	// TransactionalShare is the fraction of every key's rate and
	// connections kept for the transactional lane while it is active
	// (config lanes.transactional.share).
	TransactionalShare float64
	Log                *slog.Logger
	// Clock, when set, replaces both this engine's clock and Redis's
	// (tests). Nil uses time.Now here and Redis TIME for shared state, so
	// engines with skewed clocks still agree.
	Clock func() time.Time
}

// Limiter is the throttle of one engine. It is safe for concurrent use.
type Limiter struct {
	rdb   redis.UniversalClient
	ks    keyspace.Space
	id    string
	share float64
	log   *slog.Logger
	clock func() time.Time
	now   func() time.Time

	def       config.Limits
	overrides map[string]config.Limits // config throttle.providers
	providers map[string]config.Limits // providers file
	match     *matcher
	rules     []*rule

	// raised, when set, is told of a key whose rate went up or whose
	// suspension ended (see OnRaise).
	raised atomic.Pointer[func(key string)]

	mu      sync.Mutex
	buckets map[string]*bucket
	loop    bool          // the sync loop runs
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup
}

// New returns a limiter. It reads the providers file (the shipped one
// unless config throttle.providers_file names another) and compiles the
// response rules.
func New(o Options) (*Limiter, error) {
	if o.Redis == nil {
		return nil, fmt.Errorf("throttle: no Redis client")
	}
	f, err := LoadFile(o.Config.ProvidersFile)
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	rules, err := compileRules(append(append([]config.Rule(nil), f.Rules...), o.Config.Rules...))
	if err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	l := &Limiter{
		rdb: o.Redis, ks: o.Space, id: o.Engine, share: o.TransactionalShare, log: o.Log,
		clock: o.Clock, now: o.Clock,
		def: o.Config.Default, overrides: o.Config.Providers, providers: map[string]config.Limits{},
		match: newMatcher(f.Providers), rules: rules,
		buckets: map[string]*bucket{}, stop: make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.id == "" {
		l.id = "engine"
	}
	for _, p := range f.Providers {
		l.providers[p.Name] = p.Limits
	}
	return l, nil
}

// FromConfig builds the limiter an engine configured by cfg uses.
func FromConfig(cfg *config.Config, rdb redis.UniversalClient, log *slog.Logger) (*Limiter, error) {
	return New(Options{
		Redis: rdb, Space: keyspace.Space(cfg.Redis.Prefix), Engine: cfg.Delivery.Consumer,
		Config: cfg.Throttle, TransactionalShare: cfg.Lanes.Transactional.Share, Log: log,
	})
}

// OnRaise has fn told (in a goroutine of its own) whenever a key's rate
// goes up by more than a tenth or its suspension ends — by adaptation, an
// operator or another engine — so that jobs waiting for it can be served
// at once rather than at the time computed from the old limits.
func (l *Limiter) OnRaise(fn func(key string)) { l.raised.Store(&fn) }

// Close stops the background sync. Permits still held may be Done after.
func (l *Limiter) Close() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Key names the bucket a destination is paced by: its provider (by the
// recipient domain or the host names), or the destination's own key (its
// MX host set, or route).
func (l *Limiter) Key(domain, key string, hosts []string) string {
	if p := l.match.provider(domain, key, hosts); p != "" {
		return p
	}
	return key
}

// Limits returns the limits key is paced with.
func (l *Limiter) Limits(key string) config.Limits {
	key = BaseKey(key) // a source's bucket has its destination's limits
	lim := l.def
	if p, ok := l.providers[key]; ok {
		lim = merge(lim, p)
	}
	if p, ok := l.overrides[key]; ok {
		lim = merge(lim, p)
	}
	return normalize(lim)
}

// normalize fills what is unset and orders min <= start <= max.
func normalize(l config.Limits) config.Limits {
	if l.StartRate <= 0 {
		l.StartRate = 100
	}
	if l.MinRate <= 0 {
		l.MinRate = min(1, l.StartRate)
	}
	l.MinRate = min(l.MinRate, l.StartRate)
	l.MaxRate = max(l.MaxRate, l.StartRate)
	l.Burst = max(l.Burst, 1)
	l.MaxConnections = max(l.MaxConnections, 1)
	if l.MinConnections <= 0 {
		l.MinConnections = 1
	}
	l.MinConnections = min(l.MinConnections, l.MaxConnections)
	if l.StartConnections <= 0 {
		l.StartConnections = l.MaxConnections
	}
	l.StartConnections = min(max(l.StartConnections, l.MinConnections), l.MaxConnections)
	return l
}

// merge overlays the non-zero fields of p on d.
func merge(d, p config.Limits) config.Limits {
	set := func(dst *float64, v float64) {
		if v > 0 {
			*dst = v
		}
	}
	seti := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&d.StartRate, p.StartRate)
	set(&d.MinRate, p.MinRate)
	set(&d.MaxRate, p.MaxRate)
	seti(&d.Burst, p.Burst)
	seti(&d.MaxConnections, p.MaxConnections)
	seti(&d.MaxMessagesPerConnection, p.MaxMessagesPerConnection)
	seti(&d.StartConnections, p.StartConnections)
	seti(&d.MinConnections, p.MinConnections)
	d.RequireTLS = d.RequireTLS || p.RequireTLS
	return d
}

// bucket returns key's bucket, creating it, and makes sure the sync loop
// runs.
func (l *Limiter) bucket(key string) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		base, src := SplitBucket(key)
		b = &bucket{key: key, base: base, label: "other", lim: l.Limits(key), clock: l.now}
		b.sess = &Sessions{b: b}
		if _, named := l.providers[base]; named {
			b.label = base
		} else if _, named := l.overrides[base]; named {
			b.label = base
		} else if strings.HasPrefix(base, "route:") {
			b.label = base // one per route in the configuration: bounded
		}
		if src != "" {
			b.label += sourceSep + src // sources are the configuration's: bounded
		}
		b.met = newBucketMetrics(b.label)
		for _, r := range l.rules {
			if r.applies(base) {
				b.rules = append(b.rules, r)
			}
		}
		l.buckets[key] = b
	}
	if !l.loop {
		select {
		case <-l.stop:
		default:
			l.loop = true
			l.wg.Add(1)
			go l.syncLoop()
		}
	}
	return b
}

func (r *report) add(o report) {
	r.ok += o.ok
	r.def += o.def
	r.bounce += o.bounce
	r.fail += o.fail
	r.starved = r.starved || o.starved
}
