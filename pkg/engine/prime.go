package engine

import (
	"context"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// primeMax bounds the keys one routed batch primes.
const primeMax = 16

// primeKeys is the throttle's side of priming (*throttle.Limiter).
type primeKeys interface {
	Prime(key, lane string) bool
}

// primer primes, for one routed batch, the throttle keys its jobs go to
// (see throttle.Limiter.Prime): the key's first lease step runs while
// the jobs are moved into their lines and the line server reads them,
// rather than after, so an idle engine's first attempt at a key waits for
// one round trip fewer. It primes only while this engine has no job in
// flight (an idle engine: a launch's or a lone message's first jobs), at
// most primeMax keys a batch, and each key once: a busy engine's line
// server leases as it goes, and slots leased ahead of a backlog would
// lapse unused. Neither does it prime with throttling per egress source.
type primer struct {
	p    primeKeys
	seen map[string]bool
}

// primer returns the batch's primer; a nil one primes nothing.
func (e *Engine) primer() *primer {
	p, ok := e.Throttle.(primeKeys)
	// With throttling per egress source the line server admits from each
	// source's bucket toward the key, not the key's: nothing to prime.
	if !ok || e.inflight.len() > 0 || (e.egress != nil && e.egress.bucketsPerSource()) {
		return nil
	}
	return &primer{p: p, seen: map[string]bool{}}
}

// bucketsPerSource tells whether some source has throttle buckets of its
// own toward each key (see viaFor).
func (x *egress) bucketsPerSource() bool {
	if !x.perSource {
		return false
	}
	for _, s := range x.sources {
		if s.Address != "" {
			return true
		}
	}
	return false
}

func (pr *primer) prime(key string, l streams.Lane) {
	if pr == nil || pr.seen[key] || len(pr.seen) >= primeMax {
		return
	}
	pr.seen[key] = true
	pr.p.Prime(key, string(l))
}

// loadScripts loads the scripts of a job's way through the engine into
// Redis (see streams.Queue.LoadScripts); a failure is only logged, each
// script loads itself when missing.
func (e *Engine) loadScripts(ctx context.Context) {
	if err := e.q.LoadScripts(ctx); err != nil {
		e.Log.Warn("load scripts", "err", err)
	}
	if t, ok := e.Throttle.(interface{ LoadScripts(context.Context) error }); ok {
		if err := t.LoadScripts(ctx); err != nil {
			e.Log.Warn("load scripts", "err", err)
		}
	}
}
