package throttle

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// clock is a test clock shared by limiters (and sent to Redis as "now").
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Millisecond)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a shared Redis keyspace with limiters on it, as engines.
type env struct {
	t   *testing.T
	ks  keyspace.Space
	clk *clock
	cfg config.Throttle
}

func newEnv(t *testing.T, def config.Limits) *env {
	return &env{t: t, ks: keyspace.Space(redistest.Prefix(t)), clk: newClock(),
		cfg: config.Throttle{Default: def, ProvidersFile: "testdata/providers.yaml"}}
}

func (e *env) limiter(id string, share float64) *Limiter {
	e.t.Helper()
	l, err := New(Options{Redis: redistest.Client(e.t), Space: e.ks, Engine: id, Config: e.cfg,
		TransactionalShare: share, Clock: e.clk.now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(l.Close)
	return l
}

func (e *env) status(key string) Status {
	e.t.Helper()
	all, err := Inspect(context.Background(), redistest.Client(e.t), e.ks)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range all {
		if s.Provider == key {
			return s
		}
	}
	e.t.Fatalf("no state for %s in %+v", key, all)
	return Status{}
}

var (
	ok          = outcome.Outcome{Status: outcome.Delivered, Code: 250, Stage: outcome.StageData}
	busy        = deliver.Classify(451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]. (S77719)")
	tooFastRcpt = deliver.Classify(450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.")
)

func near(a, b float64) bool { return a > b*0.999 && a < b*1.001 }

// steady waits out l's steps under way: the sync loop steps in real time,
// and a test on its own clock must not take the refusal of a key a step
// holds for the throttle's word (on a loaded machine the test clock ran
// on 5 s while one did, and TestAdaptationSettlesJustUnderTheLimit saw
// admission stop for those 5 s).
func steady(l *Limiter) {
	l.mu.Lock()
	bs := make([]*bucket, 0, len(l.buckets))
	for _, b := range l.buckets {
		bs = append(bs, b)
	}
	l.mu.Unlock()
	for _, b := range bs {
		b.stepMu.Lock()
		b.stepMu.Unlock() //nolint:staticcheck // waiting, not guarding
	}
}

// admit is l.Admit on the test clock, after any step under way (see steady).
func admit(t *testing.T, l *Limiter, key, lane string) (*Permit, time.Time) {
	t.Helper()
	steady(l)
	p, at, err := l.Admit(context.Background(), key, lane)
	if err != nil {
		t.Fatal(err)
	}
	return p, at
}

func TestAdmitBoundsConcurrencyPerKey(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 1e6, Burst: 100, MaxConnections: 3})
	l := e.limiter("e1", 0)
	var held []*Permit
	for i := 0; i < 3; i++ {
		p, _ := admit(t, l, "k", "marketing")
		if p == nil {
			t.Fatalf("permit %d refused", i)
		}
		held = append(held, p)
	}
	if p, at := admit(t, l, "k", "marketing"); p != nil || at.IsZero() {
		t.Fatal("a 4th concurrent permit was granted")
	}
	if p, _ := admit(t, l, "other", "marketing"); p == nil {
		t.Fatal("a full key blocked another key")
	}
	held[0].Done(ok)
	held[0].Done(ok) // idempotent
	if p, _ := admit(t, l, "k", "marketing"); p == nil {
		t.Fatal("no permit after one was done")
	}
	if p, _ := admit(t, l, "k", "marketing"); p != nil {
		t.Fatal("double Done freed two slots")
	}
}

func TestAdmitPacesTheRateWithoutBlocking(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 10, Burst: 2, MaxConnections: 100})
	l := e.limiter("e1", 0)
	granted := 0
	var retry time.Time
	for range 5 {
		p, at := admit(t, l, "k", "marketing")
		if p == nil {
			retry = at
			continue
		}
		granted++
		p.Done(ok)
	}
	if granted != 2 {
		t.Fatalf("granted %d at one instant, want the burst of 2", granted)
	}
	if d := retry.Sub(e.clk.now()); d < 90*time.Millisecond || d > 110*time.Millisecond {
		t.Fatalf("retry in %v, want ~100ms at 10/s", d)
	}
	e.clk.add(100 * time.Millisecond)
	if p, _ := admit(t, l, "k", "marketing"); p == nil {
		t.Fatal("no permit when the next slot was due")
	}
}

func TestTwoEnginesShareOneRate(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 20, MaxRate: 20, Burst: 1, MaxConnections: 100})
	a, b := e.limiter("e1", 0), e.limiter("e2", 0)
	got := map[*Limiter]int{}
	const steps = 300 // 3 s in 10 ms steps
	for range steps {
		for _, l := range []*Limiter{a, b} {
			for {
				p, _ := admit(t, l, "k", "marketing")
				if p == nil {
					break
				}
				got[l]++
				p.Done(ok)
			}
		}
		e.clk.add(10 * time.Millisecond)
	}
	total := got[a] + got[b]
	// 20/s over 3 s, plus the burst; a slot may be leased and lost, none
	// may be granted twice.
	if total > 61 || total < 50 || got[a] < 15 || got[b] < 15 {
		t.Fatalf("engines got %d and %d in 3 s at 20/s together", got[a], got[b])
	}
}

func TestRecipientDeferralLeavesTheRateAlone(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, MaxConnections: 100, Burst: 10})
	l := e.limiter("e1", 0)
	for range 10 {
		p, _ := admit(t, l, "k", "marketing")
		p.Done(tooFastRcpt)
	}
	l.syncOnce()
	if s := e.status("k"); s.Rate != 100 || s.Decreases != 0 || s.Deferred != 10 {
		t.Fatalf("after 10 recipient deferrals: %+v", s)
	}
	e.clk.add(10 * time.Millisecond)
	p, _ := admit(t, l, "k", "marketing")
	p.Done(busy)
	if s := e.status("k"); !near(s.Rate, 50) || s.Decreases != 1 || s.LastDeferral == "" {
		t.Fatalf("a provider deferral did not halve an unmeasured rate: %+v", s)
	}
}

func TestABurstOfDeferralsCountsOnce(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, MaxConnections: 100, Burst: 20})
	l := e.limiter("e1", 0)
	var ps []*Permit
	for range 10 {
		p, _ := admit(t, l, "k", "marketing")
		ps = append(ps, p)
	}
	for _, p := range ps {
		p.Done(busy)
	}
	if s := e.status("k"); s.Decreases != 1 || !near(s.Rate, 50) || s.Connections != 99 {
		t.Fatalf("10 deferrals in one window: %+v; want one cut", s)
	}
	e.clk.add(minWindow)
	p, _ := admit(t, l, "k", "marketing")
	p.Done(busy)
	if s := e.status("k"); s.Decreases != 2 {
		t.Fatalf("a deferral after the window: %+v; want a second cut", s)
	}
}
