package warmup

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/slotcheck"
)

// TestOneSlotPerCommand: allowing, recording and reading a ramp send no
// script or command whose keys span slots, across a change of day.
func TestOneSlotPerCommand(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	h := slotcheck.Attach(t, rdb)
	w := New(rdb, keyspace.Space(redistest.Prefix(t)), map[string]Plan{"ip1": {Schedule: []int{10, 20}, HourlyBurst: 24}})
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, now := range []time.Time{day, day.Add(24 * time.Hour)} {
		if n, _, err := w.AllowN(ctx, "ip1", "gmail", 3, now); err != nil || n != 3 {
			t.Fatalf("allow %d %v", n, err)
		}
		if err := w.Record(ctx, "ip1", "gmail", outcome.Outcome{Status: outcome.Delivered}, now); err != nil {
			t.Fatal(err)
		}
		if err := w.Complaint(ctx, "ip1", "gmail", now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Advance(ctx, "ip1", "gmail", day.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p, err := w.Providers(ctx, "ip1"); err != nil || len(p) != 1 {
		t.Fatalf("providers %v %v", p, err)
	}
	if _, err := w.DayFigures(ctx, "ip1", "gmail", day.Format(time.DateOnly)); err != nil {
		t.Fatal(err)
	}
	if h.Checked() < 8 {
		t.Fatalf("only %d commands checked", h.Checked())
	}
}
