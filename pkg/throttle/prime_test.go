package throttle

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// TestPrimeLeasesBeforeTheFirstAdmit: a primed key's first Admit is
// granted from the slots the prime leased, without a step of its own,
// and the key is in the index; a second Prime of a fresh key does
// nothing.
func TestPrimeLeasesBeforeTheFirstAdmit(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 5})
	l := e.limiter("e1", 0)
	if !l.Prime("k", "marketing") {
		t.Fatal("a key never seen was not primed")
	}
	p, _ := admit(t, l, "k", "marketing") // waits for the prime
	if p == nil {
		t.Fatal("no permit after the prime")
	}
	p.Done(ok)
	if got := l.StepsOf("k"); got != (Steps{Primes: 1, Leases: 0}) {
		t.Fatalf("steps %+v, want one prime and no lease of Admit's own", got)
	}
	if l.Prime("k", "marketing") {
		t.Fatal("a key with fresh state was primed again")
	}
	known, err := Known(context.Background(), redistest.Client(t), e.ks)
	if err != nil || !slices.Contains(known, "k") {
		t.Fatalf("index after a prime: %v %v", known, err)
	}
}

// TestAdmitWithoutPrimeSteps is the control: without a prime, the first
// Admit runs the lease step itself (what TestPrimeLeasesBeforeTheFirstAdmit
// tells apart).
func TestAdmitWithoutPrimeSteps(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 5})
	l := e.limiter("e1", 0)
	p, _ := admit(t, l, "k", "marketing")
	if p == nil {
		t.Fatal("no permit")
	}
	p.Done(ok)
	if got := l.StepsOf("k"); got != (Steps{Primes: 0, Leases: 1}) {
		t.Fatalf("steps %+v, want one lease", got)
	}
}

// TestAdmitWaitsForAPrimeUnderWay: an Admit while a prime's step is on
// its way waits for it rather than being told to ask again later or
// stepping a second time.
func TestAdmitWaitsForAPrimeUnderWay(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 5})
	l := e.limiter("e1", 0)
	// A slow Redis: CLIENT PAUSE holds every client's commands (this
	// package's tests run one at a time), so the prime's step is still on
	// its way when Admit asks.
	rdb := redistest.Client(t)
	if err := rdb.ClientPause(context.Background(), 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if !l.Prime("k", "marketing") {
		t.Fatal("not primed")
	}
	p, at, err := l.Admit(context.Background(), "k", "marketing")
	if err != nil || p == nil {
		t.Fatalf("Admit during a prime: permit %v, ask again at %v, %v", p, at, err)
	}
	p.Done(ok)
	if got := l.StepsOf("k"); got != (Steps{Primes: 1}) {
		t.Fatalf("steps %+v, want the prime's only", got)
	}
}
