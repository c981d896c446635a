package throttle

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/slotcheck"
)

// TestOneSlotPerCommand: steps (leases, events, the sync loop), the index
// of keys and the operator's commands send no script or command whose
// keys span slots; the index still lists every key used or set.
func TestOneSlotPerCommand(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, config.Limits{StartRate: 1000, Burst: 10, MaxConnections: 5})
	rdb := redistest.Client(t)
	h := slotcheck.Attach(t, rdb)
	l, err := New(Options{Redis: rdb, Space: e.ks, Engine: "e1", Config: e.cfg, Clock: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, key := range []string{"alpha", "beta"} {
		p, _ := admit(t, l, key, "marketing")
		if p == nil {
			t.Fatalf("%s: no permit", key)
		}
		p.Done(busy)
	}
	time.Sleep(3 * syncEvery)
	if err := Set(ctx, rdb, e.ks, "gamma", 5, 2, time.Hour); err != nil {
		t.Fatal(err)
	}
	known, err := Known(ctx, rdb, e.ks)
	if err != nil || !slices.Equal(known, []string{"alpha", "beta", "gamma"}) {
		t.Fatalf("known %v %v", known, err)
	}
	st, err := Inspect(ctx, rdb, e.ks)
	if err != nil || len(st) != 3 {
		t.Fatalf("inspect %+v %v", st, err)
	}
	if err := Reset(ctx, rdb, e.ks, "alpha"); err != nil {
		t.Fatal(err)
	}
	if has, err := Has(ctx, rdb, e.ks, "alpha"); err != nil || has {
		t.Fatalf("has after reset: %v %v", has, err)
	}
	if h.Checked() < 8 {
		t.Fatalf("only %d commands checked", h.Checked())
	}
}
