package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/mxsim"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// The throttle benchmarks run real engines against a simulated provider
// (pkg/mxsim) that accepts simR messages per second over at most simC
// sessions and answers the rest "451 4.7.500 Server busy" (over the rate)
// or "421 Too many sessions" at greeting (over the sessions). Everything
// is measured at the receiver, per second: what it accepted, what it
// refused.
const (
	simR       = 50
	simC       = 5
	simLatency = 20 * time.Millisecond // the provider's time per message
	startRate  = 200
)

// benchProviders rolls sim.test up into one provider that starts at 4×
// the simulator's real limit and may go up to 1000/s, with 10
// connections (twice the simulator's).
const benchProviders = `providers:
  - name: sim
    domains: [sim.test]
    limits:
      start_rate: %d
      min_rate: 1
      max_rate: 1000
      burst: 5
      max_connections: 10
      max_messages_per_connection: 100
`

type run struct {
	b     *testing.B
	sim   *mxsim.Server
	ks    keyspace.Space
	start time.Time
}

// startRun launches an n-recipient campaign to the simulator and starts
// engines, each with its own throttle, sharing only Redis.
func startRun(b *testing.B, n, engines int, cfg mxsim.Config) *run {
	prefix := redistest.Prefix(b)
	ks := keyspace.Space(prefix)
	sim, err := mxsim.Listen("127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sim.Close)
	dir := b.TempDir()
	providers := enginetest.Write(b, filepath.Join(dir, "providers.yaml"), fmt.Sprintf(benchProviders, startRate))
	path := enginetest.Campaign(b, dir, "c", n, "sim.test")
	if _, err := launch.Launch(context.Background(), redistest.Client(b), ks, path, launch.Options{}); err != nil {
		b.Fatal(err)
	}
	r := &run{b: b, sim: sim, ks: ks, start: time.Now()}
	for i := range engines {
		ecfg := enginetest.Config(prefix, sim.Addr())
		ecfg.Delivery.Consumer = fmt.Sprintf("engine%d", i+1)
		ecfg.Throttle.ProvidersFile = providers
		enginetest.Start(b, ecfg)
	}
	return r
}

// throttleSteps is how many steps the throttles of this process ran in
// Redis so far (sluice_throttle_redis_steps_total).
func throttleSteps(b *testing.B) float64 {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		b.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "sluice_throttle_redis_steps_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// waitFinished waits until every recipient has a final outcome.
func (r *run) waitFinished(within time.Duration) store.Status {
	st := store.New(redistest.Client(r.b), r.ks)
	deadline := time.Now().Add(within)
	for {
		s, err := st.Status(context.Background(), "c")
		if err != nil {
			r.b.Fatal(err)
		}
		if s.State == store.StateFinished {
			return s
		}
		if time.Now().After(deadline) {
			r.b.Fatalf("not finished after %v: %+v", within, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// perSecond counts the simulator's events per second since it started.
type perSecond struct{ accepted, refused []int }

func (r *run) perSecond() perSecond {
	var p perSecond
	for _, e := range r.sim.Events() {
		i := int(e.At / time.Second)
		for len(p.accepted) <= i {
			p.accepted, p.refused = append(p.accepted, 0), append(p.refused, 0)
		}
		if e.Kind == mxsim.Accepted {
			p.accepted[i]++
		} else {
			p.refused[i]++
		}
	}
	return p
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// converged is the first second from which the attempt rate (accepted
// plus refused) stays within 85–115% of limit every second up to second
// end: the throttle has found the limit and holds it.
func converged(p perSecond, limit float64, end int) int {
	conv := -1
	for i := 0; i < end; i++ {
		a := float64(p.accepted[i] + p.refused[i])
		switch {
		case a < 0.85*limit || a > 1.15*limit:
			conv = -1
		case conv < 0:
			conv = i
		}
	}
	return conv
}

// backlogEnd is the second by which 95% of n were accepted: after it
// only the retried tail is left, which no throttle can speed up.
func backlogEnd(p perSecond, n int) int {
	acc := 0
	for i, a := range p.accepted {
		if acc += a; acc >= n*95/100 {
			return i
		}
	}
	return len(p.accepted)
}

// BenchmarkThrottleConverges (acceptance 1): a 3,000-recipient campaign
// against R = 50 msg/s and C = 5 sessions, from a start rate of 200/s.
// Target: goodput ≥ 90% of R after convergence, ≤ 5% of attempts
// deferred over the whole run, converged within 30 s, all delivered.
func BenchmarkThrottleConverges(b *testing.B) {
	for range b.N {
		const n = 3000
		steps0 := throttleSteps(b)
		r := startRun(b, n, 1, mxsim.Config{Rate: simR, MaxConns: simC, Latency: simLatency})
		st := r.waitFinished(5 * time.Minute)
		p := r.perSecond()
		s := r.sim.Stats()
		end := backlogEnd(p, n)
		conv := converged(p, simR, end)
		b.ReportMetric((throttleSteps(b)-steps0)/float64(s.Accepted+s.Deferred+s.Refused), "redis-steps/attempt")
		goodput := 0.0
		if conv >= 0 && end > conv {
			goodput = float64(sum(p.accepted[conv:end])) / float64(end-conv) / simR
		}
		deferredPct := 100 * float64(s.Deferred+s.Refused) / float64(s.Accepted+s.Deferred+s.Refused)
		b.ReportMetric(goodput, "goodput/R")
		b.ReportMetric(deferredPct, "deferred-%")
		b.ReportMetric(float64(conv), "converged-s")
		b.ReportMetric(float64(s.Refused), "sessions-refused")
		b.ReportMetric(time.Since(r.start).Seconds(), "run-s")
		b.Logf("accepted/s %v", p.accepted)
		b.Logf("refused/s  %v", p.refused)
		if st.Delivered != n || s.Accepted != n {
			b.Errorf("delivered %d, receiver took %d; want %d", st.Delivered, s.Accepted, n)
		}
		if goodput < 0.9 || deferredPct > 5 || conv < 0 || conv > 30 {
			b.Errorf("acceptance 1 NOT MET: goodput %.2f R (≥ 0.9), deferred %.1f%% (≤ 5), converged at %d s (≤ 30)",
				goodput, deferredPct, conv)
		}
	}
}

// BenchmarkThrottleFollowsARaise (acceptance 2): the simulator doubles R
// from 50 to 100 msg/s 30 s into the run; target: ≥ 80% of the new R
// within 60 s.
func BenchmarkThrottleFollowsARaise(b *testing.B) {
	for range b.N {
		const n, raiseAt = 9000, 30
		r := startRun(b, n, 1, mxsim.Config{Rate: simR, MaxConns: simC, Latency: simLatency,
			Schedule: []mxsim.Change{{At: raiseAt * time.Second, Rate: 2 * simR}}})
		reached := -1
		for reached < 0 && time.Since(r.start) < (raiseAt+75)*time.Second {
			time.Sleep(time.Second)
			p := r.perSecond()
			for i := raiseAt + 2; i < len(p.accepted)-1; i++ { // complete seconds only
				// The end of the first 3 s in which it averaged 80%.
				if float64(sum(p.accepted[i-2:i+1]))/3 >= 0.8*2*simR {
					reached = i + 1 - raiseAt
					break
				}
			}
		}
		p := r.perSecond()
		s := r.sim.Stats()
		b.ReportMetric(float64(reached), "s-to-80%-of-2R")
		b.ReportMetric(100*float64(s.Deferred+s.Refused)/float64(s.Accepted+s.Deferred+s.Refused), "deferred-%")
		b.Logf("accepted/s %v", p.accepted)
		if reached < 0 || reached > 60 {
			b.Errorf("acceptance 2 NOT MET: 80%% of the doubled rate reached after %d s (≤ 60; -1: never)", reached)
		}
	}
}

// BenchmarkThrottleTwoEngines (acceptance 3): two engines, each with its
// own throttle, share one Redis and one R = 50 provider. Target: combined
// accepted rate ≤ 1.1 R, deferrals ≤ 5%. The receiver cannot accept more
// than R, so the attempt rate (accepted + refused) is reported too: that
// is what the engines together really sent.
func BenchmarkThrottleTwoEngines(b *testing.B) {
	for range b.N {
		const n = 3000
		r := startRun(b, n, 2, mxsim.Config{Rate: simR, MaxConns: simC, Latency: simLatency})
		st := r.waitFinished(5 * time.Minute)
		p := r.perSecond()
		s := r.sim.Stats()
		end := backlogEnd(p, n)
		conv := converged(p, simR, end)
		accepted, attempted, peak := 0.0, 0.0, 0.0
		if conv >= 0 && end > conv {
			accepted = float64(sum(p.accepted[conv:end])) / float64(end-conv) / simR
			attempted = float64(sum(p.accepted[conv:end])+sum(p.refused[conv:end])) / float64(end-conv) / simR
			for i := conv + 5; i <= end; i++ {
				peak = max(peak, float64(sum(p.accepted[i-5:i])+sum(p.refused[i-5:i]))/5/simR)
			}
		}
		deferredPct := 100 * float64(s.Deferred+s.Refused) / float64(s.Accepted+s.Deferred+s.Refused)
		b.ReportMetric(accepted, "accepted/R")
		b.ReportMetric(attempted, "attempted/R")
		b.ReportMetric(peak, "peak-5s-attempted/R")
		b.ReportMetric(deferredPct, "deferred-%")
		b.ReportMetric(float64(conv), "converged-s")
		b.ReportMetric(float64(s.Refused), "sessions-refused")
		b.Logf("accepted/s %v", p.accepted)
		b.Logf("refused/s  %v", p.refused)
		if st.Delivered != n {
			b.Errorf("delivered %d of %d", st.Delivered, n)
		}
		if attempted > 1.1 || deferredPct > 5 || conv < 0 {
			b.Errorf("acceptance 3 NOT MET: attempted %.2f R (≤ 1.1), deferred %.1f%% (≤ 5), converged at %d s",
				attempted, deferredPct, conv)
		}
	}
}
