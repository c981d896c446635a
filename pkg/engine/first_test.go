package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// firstLaunch starts an engine whose line server, with nothing due,
// sleeps an hour (nothing but a wake-up brings it round sooner), lets it
// fall asleep, launches a campaign of n recipients to one receiver and
// waits for them all. It returns the engine's throttle and the
// receiver's key.
func firstLaunch(t *testing.T, n int) (*throttle.Limiter, string) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{Discard: true})
	prefix := redistest.Prefix(t)
	cfg := enginetest.Config(prefix, srv.Addr)
	var thr *throttle.Limiter
	enginetest.StartWith(t, cfg, func(d *engine.Deps) {
		d.IdleWait = time.Hour
		thr = d.Throttle.(*throttle.Limiter)
	})
	time.Sleep(500 * time.Millisecond) // up, polled once, asleep
	path := enginetest.Campaign(t, t.TempDir(), "first", n, "example.test")
	if _, err := launch.Launch(context.Background(), redistest.Client(t), keyspace.Space(prefix), path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for srv.Count() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.Count() < n {
		t.Fatalf("%d of %d messages within 30 s: the line server slept through the route (it polls only hourly here)", srv.Count(), n)
	}
	return thr, "route:" + srv.Addr
}

// TestRouteWakesTheSleepingLineServer: jobs routed into an idle line are
// taken as soon as they are in it, not at the line server's next poll
// (an hour away here): the router wakes it.
func TestRouteWakesTheSleepingLineServer(t *testing.T) {
	firstLaunch(t, 5)
}

// TestIdleEnginePrimesTheThrottle: the router of an idle engine primes
// the throttle key of the jobs it routes (throttle.Limiter.Prime), so the
// line server's first Admit finds slots leased and steps no more: one
// prime, no lease step of Admit's own.
func TestIdleEnginePrimesTheThrottle(t *testing.T) {
	thr, key := firstLaunch(t, 5)
	if got := thr.StepsOf(key); got != (throttle.Steps{Primes: 1}) {
		t.Fatalf("steps of %s: %+v, want one prime and no lease step in Admit", key, got)
	}
}
