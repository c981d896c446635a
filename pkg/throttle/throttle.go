// Package throttle paces delivery per destination: every key (a provider,
// or a destination's MX host set) has a token bucket for its message rate
// and a limit on concurrent sessions.
//
// Admit never blocks: it grants a Permit or says when to try again, so the
// engine can put a job for a throttled provider back in line instead of
// holding a worker (no head-of-line blocking). Every Permit is completed
// with the attempt's Outcome, which is what adaptation feeds on.
//
// This is the local, static form: limits come from config and hold per
// engine process.
package throttle

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
)

// Permit allows one delivery attempt to a key.
type Permit struct {
	Key string
	// MaxPerConn is how many messages one SMTP session may carry.
	MaxPerConn int
	done       func(deliver.Outcome)
	once       sync.Once
}

// Done reports the attempt's outcome and frees the permit's session slot.
func (p *Permit) Done(out deliver.Outcome) { p.once.Do(func() { p.done(out) }) }

// Bucket is one key's limits.
type Bucket struct {
	rate       *rate.Limiter
	conc       chan struct{}
	maxPerConn int
}

// Limiter holds a bucket per key.
type Limiter struct {
	def       config.Limits
	providers map[string]config.Limits
	mu        sync.Mutex
	buckets   map[string]*Bucket
	now       func() time.Time
}

// New returns a limiter with the configured default and provider limits.
func New(t config.Throttle) *Limiter {
	return &Limiter{def: t.Default, providers: t.Providers, buckets: map[string]*Bucket{}, now: time.Now}
}

// Key names the bucket a destination is paced by.
func (l *Limiter) Key(d deliver.Destination) string { return d.Key }

func (l *Limiter) bucket(key string) *Bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		lim := l.def
		if p, ok := l.providers[key]; ok {
			lim = merge(lim, p)
		}
		b = &Bucket{
			rate:       rate.NewLimiter(rate.Limit(lim.StartRate), max(lim.Burst, 1)),
			conc:       make(chan struct{}, max(lim.MaxConnections, 1)),
			maxPerConn: lim.MaxMessagesPerConnection,
		}
		l.buckets[key] = b
	}
	return b
}

// merge overlays the non-zero fields of p on d.
func merge(d, p config.Limits) config.Limits {
	if p.StartRate > 0 {
		d.StartRate = p.StartRate
	}
	if p.MinRate > 0 {
		d.MinRate = p.MinRate
	}
	if p.MaxRate > 0 {
		d.MaxRate = p.MaxRate
	}
	if p.Burst > 0 {
		d.Burst = p.Burst
	}
	if p.MaxConnections > 0 {
		d.MaxConnections = p.MaxConnections
	}
	if p.MaxMessagesPerConnection > 0 {
		d.MaxMessagesPerConnection = p.MaxMessagesPerConnection
	}
	return d
}

// busyRetry is when to ask again while every session slot is taken.
const busyRetry = 20 * time.Millisecond

// Admit grants a permit for one attempt to key on lane ("transactional"
// or "marketing") now, or returns the earliest time worth asking again.
func (l *Limiter) Admit(_ context.Context, key, _ string) (*Permit, time.Time, error) {
	b := l.bucket(key)
	now := l.now()
	select {
	case b.conc <- struct{}{}:
	default:
		return nil, now.Add(busyRetry), nil
	}
	r := b.rate.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		<-b.conc
		return nil, now.Add(d), nil
	}
	return &Permit{Key: key, MaxPerConn: b.maxPerConn, done: func(deliver.Outcome) { <-b.conc }}, time.Time{}, nil
}
