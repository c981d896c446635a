package feedbackloop_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

// TestReportsCountAgainstTheirSource: complaints and hard bounces that
// come back by mail count against the egress source the recipient's mail
// left from (the record's src) toward its provider (the record's pv):
// into the source's totals, and into a ramping source's warm-up figures
// of the day, which judge its ramp.
func TestReportsCountAgainstTheirSource(t *testing.T) {
	e := setupWith(t, smtptest.Options{Discard: true, Quiet: true}, func(c *config.Config) {
		p, err := config.Parse("src.yaml", []byte(`hostname: mta.sluice.test
sources:
  - {name: ip3, address: 127.0.0.3, ehlo: ip3.sluice.test, warmup: {schedule: [1000], start: 2026-01-01}}
`))
		if err != nil {
			t.Fatal(err)
		}
		c.Sources, c.Pools, c.Lanes = p.Sources, p.Pools, p.Lanes
	})
	ctx := context.Background()
	const n = 40
	e.launch(t, "src1", n)
	if s := enginetest.WaitFinished(t, e.st, "src1", 30*time.Second); s.Delivered != n {
		t.Fatalf("campaign: %+v", s)
	}
	rec, err := e.st.Record(ctx, "src1", addr(0))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Src != "ip3" || rec.Prov == "" {
		t.Fatalf("record %+v names no source and provider", rec)
	}
	// The engine writes its delivered counts out within a second.
	waitTotals(t, e, "ip3", warmup.SourceTotals{Delivered: n})
	for i := range 4 {
		v := e.vrp(t, "src1", addr(i))
		e.send(t, v, dsn(v, addr(i), "5.1.1", "550 5.1.1 User unknown"))
	}
	for i := 4; i < 6; i++ {
		e.send(t, fblAddr, arf(e.vrp(t, "src1", addr(i)), addr(i)))
	}
	e.send(t, fblAddr, arf(e.vrp(t, "src1", addr(4)), addr(4))) // again: counted once
	waitTotals(t, e, "ip3", warmup.SourceTotals{Delivered: n - 4, Bounced: 4, Complaints: 2,
		ComplaintRate: 2.0 / (n - 4), BounceRate: 4.0 / (n - 4)})
	w := warmup.New(e.rdb, e.ks, nil)
	day, err := w.DayFigures(ctx, "ip3", rec.Prov, time.Now().UTC().Format(time.DateOnly))
	if err != nil {
		t.Fatal(err)
	}
	if day.Attempts != n || day.Delivered != n || day.Bounced != 4 || day.Complaints != 2 {
		t.Errorf("ip3's warm-up day toward %s: %+v, want %d attempts and delivered, 4 bounced, 2 complaints", rec.Prov, day, n)
	}
}

func waitTotals(t *testing.T, e *env, source string, want warmup.SourceTotals) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := warmup.ReadTotals(context.Background(), e.rdb, e.ks, []string{source})
		if err != nil {
			t.Fatal(err)
		}
		if got[source] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's totals %+v, want %+v", source, got[source], want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
