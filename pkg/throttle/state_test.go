package throttle

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestSetPinsAndResetForgets(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 1, MaxConnections: 10})
	l := e.limiter("e1", 0)
	ctx := context.Background()
	rdb := redistest.Client(t)
	p, _ := admit(t, l, "k", "marketing")
	p.Done(busy) // some learnt state: a cut
	if err := Set(ctx, rdb, e.ks, "k", 4, 2, 0); err != nil {
		t.Fatal(err)
	}
	// A running engine takes it in at its next sync.
	deadline := time.Now().Add(3 * time.Second)
	for {
		b := l.bucket("k")
		b.mu.Lock()
		rate, conc := b.rate, b.conc
		b.mu.Unlock()
		if rate == 4 && conc == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine still at %v/s, %d connections after set", rate, conc)
		}
		e.clk.add(10 * time.Millisecond)
		time.Sleep(20 * time.Millisecond)
	}
	e.clk.add(time.Second) // a slot at the pinned rate, however long the sync took
	p, _ = admit(t, l, "k", "marketing")
	p.Done(busy) // pinned: no cut
	if s := e.status("k"); s.State != "pinned" || s.Rate != 4 || s.Connections != 2 || s.Decreases != 1 || !s.PinnedUntil.IsZero() {
		t.Fatalf("pinned: %+v", s)
	}
	if err := Reset(ctx, rdb, e.ks, "k"); err != nil {
		t.Fatal(err)
	}
	e.clk.add(100 * time.Millisecond)
	l.syncOnce()
	if s := e.status("k"); s.State != "normal" || s.Rate != 100 || s.Connections != 10 || s.Decreases != 0 {
		t.Fatalf("after reset: %+v", s)
	}
	// A pin for a while ends by itself.
	if err := Set(ctx, rdb, e.ks, "k", 3, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	l.syncOnce()
	if s := e.status("k"); s.State != "pinned" || s.Rate != 3 || s.Connections != 10 {
		t.Fatalf("pinned for a minute: %+v", s)
	}
	e.clk.add(2 * time.Minute)
	// It adapts on from the pinned rate.
	if p, _ := admit(t, l, "k", "marketing"); p == nil || !near(b(l).rate, 3) {
		t.Fatalf("after the pin: permit %v, rate %v", p != nil, b(l).rate)
	}
	if s := e.status("k"); s.State == "pinned" {
		t.Fatalf("pin outlived its minute: %+v", s)
	}
	if err := Set(ctx, rdb, e.ks, "k", 0, 0, 0); err == nil {
		t.Fatal("an empty set was accepted")
	}
}

func b(l *Limiter) *bucket {
	bk := l.bucket("k")
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return &bucket{rate: bk.rate, conc: bk.conc}
}

func TestResetLiftsASuspensionEarly(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 100, Burst: 10, MaxConnections: 10})
	l := e.limiter("e1", 0)
	p, _ := admit(t, l, "yahoo", "marketing")
	p.Done(tss04)
	if p, _ := admit(t, l, "yahoo", "marketing"); p != nil {
		t.Fatal("not suspended")
	}
	if err := Reset(context.Background(), redistest.Client(t), e.ks, "yahoo"); err != nil {
		t.Fatal(err)
	}
	e.clk.add(syncEvery + time.Millisecond) // the local view is now stale
	if p, at := admit(t, l, "yahoo", "marketing"); p == nil {
		t.Fatalf("still held until +%v after reset", at.Sub(e.clk.now()))
	}
}

func TestTransactionalShareIsKeptFree(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 20, MaxRate: 20, Burst: 1, MaxConnections: 5})
	l := e.limiter("e1", 0.2)
	var tx, mk, queued int
	var txRetry time.Time
	// Marketing takes every slot it can and holds what it gets; a
	// transactional message arrives 10 times a second, more than the
	// lane's share, and asks again when Admit says, as the engine does.
	for i := range 300 { // 3 s
		if i%10 == 0 {
			queued++
		}
		if queued > 0 && !e.clk.now().Before(txRetry) {
			if p, at := admit(t, l, "k", "transactional"); p != nil {
				tx++
				queued--
				p.Done(ok)
			} else {
				txRetry = at
			}
		}
		for {
			p, _ := admit(t, l, "k", "marketing")
			if p == nil {
				break
			}
			mk++
			p.Done(ok)
		}
		e.clk.add(10 * time.Millisecond)
	}
	// 20% of 20/s over 3 s is 12, minus the second the lane needs to be
	// seen; marketing keeps to about 80% (48).
	if tx < 10 || mk > 52 || tx+mk > 61 {
		t.Fatalf("transactional %d, marketing %d in 3 s at 20/s", tx, mk)
	}
	// Nor does it take the last connection while the lane is active.
	held := 0
	for range 100 {
		if p, _ := admit(t, l, "k", "marketing"); p != nil {
			held++
		}
		e.clk.add(10 * time.Millisecond)
	}
	if held != 4 {
		t.Fatalf("marketing holds %d connections; want 4 of 5", held)
	}
	if p, _ := admit(t, l, "k", "transactional"); p == nil {
		t.Fatal("the transactional lane found no connection left")
	}
}

func TestMarketingUsesAnIdleTransactionalShare(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 20, MaxRate: 20, Burst: 1, MaxConnections: 5})
	l := e.limiter("e1", 0.2)
	mk := 0
	for range 300 {
		for {
			p, _ := admit(t, l, "k", "marketing")
			if p == nil {
				break
			}
			mk++
			p.Done(ok)
		}
		e.clk.add(10 * time.Millisecond)
	}
	if mk < 57 {
		t.Fatalf("marketing alone got %d in 3 s at 20/s; want the whole rate", mk)
	}
}

func gather(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := []string{}
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			k := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				got[k] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[k] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[k] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return got
}

func TestMetricsAreRecordedInAdmitAndDone(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 1000, Burst: 100, MaxConnections: 10})
	l := e.limiter("e1", 0)
	before := gather(t)
	// bigmail (testdata/providers.yaml): 100/s, burst 1.
	for range 3 {
		p, _ := admit(t, l, "bigmail", "marketing")
		p.Done(ok)
		e.clk.add(10 * time.Millisecond)
	}
	p, _ := admit(t, l, "bigmail", "marketing")
	p.Done(busy)
	got := gather(t)
	for _, k := range []string{"sluice_throttle_outcomes_total{provider=bigmail,status=delivered}",
		"sluice_throttle_outcomes_total{provider=bigmail,status=deferred}", "sluice_throttle_delivery_seconds{provider=bigmail}"} {
		got[k] -= before[k]
	}
	for k, want := range map[string]float64{
		"sluice_throttle_outcomes_total{provider=bigmail,status=delivered}": 3,
		"sluice_throttle_outcomes_total{provider=bigmail,status=deferred}":  1,
		"sluice_throttle_delivery_seconds{provider=bigmail}":                3,
		"sluice_throttle_connections_in_use{provider=bigmail}":              0,
		"sluice_throttle_rate{provider=bigmail}":                            50,
	} {
		if g, ok := got[k]; !ok || g != want && !near(g, want) {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, want)
		}
	}
}
