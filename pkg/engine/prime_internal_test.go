package engine

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// primeLog is a Throttle that records the keys it is asked to prime.
type primeLog struct {
	primed []string
}

func (p *primeLog) Key(domain, key string, hosts []string) string { return key }
func (p *primeLog) Admit(context.Context, string, string) (*throttle.Permit, time.Time, error) {
	return nil, time.Time{}, nil
}
func (p *primeLog) Prime(key, lane string) bool {
	p.primed = append(p.primed, lane+" "+key)
	return true
}

// TestPrimerPrimesOnlyWhileIdle: an idle engine's routed batch primes
// each of its keys once, at most primeMax of them; an engine with a job
// in flight primes none (its line server leases as it goes).
func TestPrimerPrimesOnlyWhileIdle(t *testing.T) {
	log := &primeLog{}
	e := &Engine{Deps: Deps{Throttle: log}}
	pr := e.primer()
	for i := range 2 * primeMax {
		pr.prime(fmt.Sprintf("k%02d", i%(primeMax+3)), streams.Marketing)
	}
	if len(log.primed) != primeMax || !slices.Contains(log.primed, "marketing k00") || slices.Contains(log.primed, fmt.Sprintf("marketing k%02d", primeMax)) {
		t.Fatalf("an idle engine primed %v, want k00..k%02d once each", log.primed, primeMax-1)
	}
	log.primed = nil
	e.inflight.add(streams.Delivery{Job: streams.Job{ID: "job"}, StreamID: "1-0"})
	e.primer().prime("k", streams.Marketing)
	if len(log.primed) != 0 {
		t.Fatalf("a busy engine primed %v", log.primed)
	}
}
