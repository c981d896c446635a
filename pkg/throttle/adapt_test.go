package throttle

import (
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
)

// provider is a receiver with a token-bucket limit on the test clock.
type provider struct {
	rate, burst, tokens float64
	last                time.Time
}

func (p *provider) take(now time.Time) bool {
	if !p.last.IsZero() {
		p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.rate)
	}
	p.last = now
	if p.tokens >= 1 {
		p.tokens--
		return true
	}
	return false
}

// drive sends as fast as the throttle allows for d of test time and
// returns accepted messages per second and the deferral count.
func drive(t *testing.T, e *env, l *Limiter, p *provider, d time.Duration) (perSec []int, deferred int) {
	t.Helper()
	const tick = 5 * time.Millisecond
	acc := 0
	for i := 1; i <= int(d/tick); i++ {
		for {
			pm, _ := admit(t, l, "k", "marketing")
			if pm == nil {
				break
			}
			if p.take(e.clk.now()) {
				acc++
				pm.Done(ok)
			} else {
				deferred++
				pm.Done(busy)
			}
		}
		e.clk.add(tick)
		if i%int(time.Second/tick) == 0 {
			perSec = append(perSec, acc)
			acc = 0
		}
	}
	return perSec, deferred
}

func mean(xs []int) float64 {
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(len(xs))
}

// TestAdaptationSettlesJustUnderTheLimit runs the law against a provider
// taking 50/s from a start of 200/s: it must find the limit within a few
// seconds, hold ≥ 90% of it with few deferrals, and follow the limit when
// it doubles.
func TestAdaptationSettlesJustUnderTheLimit(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 200, MaxRate: 1000, Burst: 5, MaxConnections: 100})
	l := e.limiter("e1", 0)
	p := &provider{rate: 50, burst: 10, tokens: 10}
	perSec, deferred := drive(t, e, l, p, 60*time.Second)
	total := deferred
	for _, n := range perSec {
		total += n
	}
	t.Logf("per second: %v; deferred %d of %d", perSec, deferred, total)
	if g := mean(perSec[5:]); g < 45 || g > 51 {
		t.Errorf("goodput after 5 s %.1f/s; want 45..51 against a 50/s limit", g)
	}
	if f := float64(deferred) / float64(total); f > 0.05 {
		t.Errorf("%.1f%% of attempts deferred; want ≤ 5%%", 100*f)
	}
	s := e.status("k")
	if s.Ceiling < 45 || s.Ceiling > 55 || s.Decreases < 2 {
		t.Errorf("state %+v: want a ceiling measured near 50", s)
	}

	p.rate, p.burst = 100, 20
	perSec, _ = drive(t, e, l, p, 60*time.Second)
	t.Logf("after doubling: %v", perSec)
	reached := -1
	for i := 2; i < len(perSec); i++ {
		if mean(perSec[i-2:i+1]) >= 80 {
			reached = i
			break
		}
	}
	if reached < 0 || reached > 50 {
		t.Errorf("80%% of the doubled limit reached after %d s; want within 50", reached)
	}
}
