// Package throttle paces delivery per destination: every key (a provider,
// or a destination's MX host set) has a token bucket for its message rate
// and a limit on concurrent sessions.
//
// This is the local, static form: limits come from config and hold per
// engine process. Adaptation to deferrals and sharing state across engines
// through Redis build on this contract (Acquire, then report the outcome).
package throttle

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/time/rate"

	"github.com/sluice-mta/sluice/pkg/config"
)

// Bucket is one key's limits.
type Bucket struct {
	rate *rate.Limiter
	conc chan struct{}
	// MaxPerConn is how many messages one SMTP session may carry.
	MaxPerConn int
}

// Limiter holds a bucket per key.
type Limiter struct {
	def       config.Limits
	providers map[string]config.Limits
	mu        sync.Mutex
	buckets   map[string]*Bucket
}

// New returns a limiter with the configured default and provider limits.
func New(t config.Throttle) *Limiter {
	return &Limiter{def: t.Default, providers: t.Providers, buckets: map[string]*Bucket{}}
}

// Bucket returns key's bucket, creating it from the defaults.
func (l *Limiter) Bucket(key string) *Bucket {
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
			MaxPerConn: lim.MaxMessagesPerConnection,
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

// Acquire waits for a concurrency slot and a rate token for key. The caller
// must call release when the attempt is over.
func (l *Limiter) Acquire(ctx context.Context, key string) (b *Bucket, release func(), err error) {
	b = l.Bucket(key)
	select {
	case b.conc <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("throttle %s: %w", key, ctx.Err())
	}
	if err := b.rate.Wait(ctx); err != nil {
		<-b.conc
		return nil, nil, fmt.Errorf("throttle %s: %w", key, err)
	}
	return b, func() { <-b.conc }, nil
}
