package throttle

import (
	"context"
	"fmt"
	"time"
)

// primeTimeout bounds a prime's step.
const primeTimeout = 2 * time.Second

// Prime leases key's first send slots for lane in the background (one
// step, as Admit would) when this engine holds no fresh state of key and
// no step of it is under way, and tells whether it started one. An
// engine's router primes the keys it routes jobs to while the engine is
// idle, so the step runs alongside the route and the line server's read
// rather than after them: the first attempt of an idle key waits for
// one round trip fewer. An Admit of key while a prime is under way waits
// for it (one round trip at most) instead of stepping again.
//
// A prime whose slots go unused (the line server busy elsewhere for
// longer than their grace) costs one step: callers prime only while the
// engine has nothing in flight.
func (l *Limiter) Prime(key, lane string) bool {
	b := l.bucket(key)
	tx := lane == "transactional"
	l.mu.Lock() // before b.mu, as everywhere
	select {
	case <-l.stop:
		l.mu.Unlock()
		return false
	default:
		l.wg.Add(1) // the step's goroutine's, given back if none starts
	}
	l.mu.Unlock()
	now := l.now()
	b.mu.Lock()
	ln := &b.lease[b2i(tx)]
	if (b.ready && now.Sub(b.synced) <= leaseFresh) || b.priming != nil || ln.busy || !b.stepMu.TryLock() {
		b.mu.Unlock()
		l.wg.Done()
		return false
	}
	b.lastUse = now
	if tx {
		b.txSeen = now
	}
	done := make(chan struct{})
	b.priming = done
	b.primes++
	q := l.leaseReq(b, ln, tx, now)
	b.mu.Unlock()
	steps.WithLabelValues("prime").Inc()
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), primeTimeout)
		defer cancel()
		if _, err := l.runLease(ctx, b, ln, q, 0); err != nil {
			l.log.Warn("throttle prime", "key", key, "err", err)
		}
		b.mu.Lock()
		b.priming = nil
		b.mu.Unlock()
		close(done)
	}()
	return true
}

// awaitPrime waits for a prime of b under way, if any; false when ctx
// ended first.
func (b *bucket) awaitPrime(ctx context.Context) bool {
	b.mu.Lock()
	p := b.priming
	b.mu.Unlock()
	if p == nil {
		return true
	}
	select {
	case <-p:
		return true
	case <-ctx.Done():
		return false
	}
}

// Steps counts the steps of one key this engine ran: primes, and leases
// run by Admit (see StepsOf).
type Steps struct {
	Primes, Leases int
}

// StepsOf says how many steps this engine ran for key to lease slots,
// primes and Admit's own, since it last forgot the key (tests and
// diagnostics: an Admit after a prime steps no more).
func (l *Limiter) StepsOf(key string) Steps {
	l.mu.Lock()
	b := l.buckets[key]
	l.mu.Unlock()
	if b == nil {
		return Steps{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return Steps{Primes: b.primes, Leases: b.leases}
}

// LoadScripts loads the step script into Redis (every master of a
// cluster): a key's first step after a start on a fresh or restarted
// Redis then pays no NOSCRIPT round trip.
func (l *Limiter) LoadScripts(ctx context.Context) error {
	if err := stepScript.Load(ctx, l.rdb).Err(); err != nil {
		return fmt.Errorf("throttle: load scripts: %w", err)
	}
	return nil
}
