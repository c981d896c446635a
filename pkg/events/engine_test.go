package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// TestEventsMatchTheCounters: a campaign paused, resumed and cancelled
// half-way has exactly one event per counted change — queued per
// recipient, then delivered or cancelled — whichever way each job ended
// (settled by a worker, cancelled waiting in its line or parked).
func TestEventsMatchTheCounters(t *testing.T) {
	const n = 400
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	srv := smtptest.Start(t, smtptest.Options{Discard: true})
	if _, err := launch.Launch(ctx, rdb, ks, enginetest.Campaign(t, t.TempDir(), "ev", n, "example.test"), launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = 100, 100, 5
	enginetest.Start(t, cfg)
	st := store.New(rdb, ks)
	wait := func(ok func(store.Status) bool) store.Status {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			s, err := st.Status(ctx, "ev")
			if err != nil {
				t.Fatal(err)
			}
			if ok(s) {
				return s
			}
			if time.Now().After(end) {
				t.Fatalf("status %+v", s)
			}
		}
	}
	wait(func(s store.Status) bool { return s.Delivered >= 50 })
	if err := control.Pause(ctx, rdb, ks, "ev"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := control.Resume(ctx, rdb, ks, "ev"); err != nil {
		t.Fatal(err)
	}
	wait(func(s store.Status) bool { return s.Delivered >= 150 })
	if _, err := control.Cancel(ctx, rdb, ks, "ev"); err != nil {
		t.Fatal(err)
	}
	s := wait(func(s store.Status) bool { return s.Queued == 0 })

	evs, err := events.New(rdb, ks).Read(ctx, "0", 10*n, -1)
	if err != nil {
		t.Fatal(err)
	}
	count := map[events.Type]int64{}
	final := map[string]int{}
	for _, e := range evs {
		count[e.Type]++
		if e.Type == events.Delivered || e.Type == events.Cancelled {
			final[e.Recipient]++
		}
	}
	if count[events.Queued] != n || count[events.Delivered] != s.Delivered || count[events.Cancelled] != s.Cancelled ||
		count[events.Paused] != 1 || count[events.Resumed] != 1 || len(final) != n {
		t.Fatalf("events %v (%d recipients with a final event) for status %+v", count, len(final), s)
	}
	for r, c := range final {
		if c != 1 {
			t.Fatalf("%s has %d final events", r, c)
		}
	}
	t.Logf("%d delivered, %d cancelled; events %v", s.Delivered, s.Cancelled, count)
}
