package inbound

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per client IP. Buckets idle long enough to be
// full again are forgotten, so the map stays as small as the set of
// recent clients.
type limiter struct {
	r     rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{r: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}}
}

// idle is how long after its last use a bucket is surely full again.
func (l *limiter) idle() time.Duration {
	return time.Duration(float64(l.burst)/float64(l.r)*float64(time.Second)) + time.Minute
}

func (l *limiter) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idle() {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.r, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// contextTimeout is the context of one handler call: it ends when the
// server closes or after HandlerTimeout.
func contextTimeout(s *Server) (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.cfg.HandlerTimeout)
}
