package control

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// slowCampaign launches n recipients and runs an engine paced at rate/s.
func slowCampaign(t *testing.T, n int, rate float64) (*smtptest.Server, keyspace.Space, *store.Store) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "c", n, "example.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = rate, rate, 1
	enginetest.Start(t, cfg)
	return srv, ks, store.New(rdb, ks)
}

func waitCount(t *testing.T, srv *smtptest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for srv.Count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d messages, waited for %d", srv.Count(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPauseStopsDeliveriesAndResumeFinishesExactlyOnce(t *testing.T) {
	const n = 300
	srv, ks, st := slowCampaign(t, n, 100)
	rdb := redistest.Client(t)
	ctx := context.Background()
	waitCount(t, srv, 30)
	if err := Pause(ctx, rdb, ks, "c"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // engines see the pause within a second
	atPause := srv.Count()
	time.Sleep(2 * time.Second)
	if got := srv.Count(); got != atPause || got >= n {
		t.Fatalf("deliveries went on while paused: %d then %d", atPause, got)
	}
	if s, _ := st.Status(ctx, "c"); s.State != store.StatePaused || s.Delivered != int64(atPause) {
		t.Fatalf("status while paused %+v (receiver %d)", s, atPause)
	}
	if _, err := Resume(ctx, rdb, ks, "c"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, _ := st.Status(ctx, "c")
		if s.State == store.StateFinished {
			if s.Delivered != n {
				t.Fatalf("finished with %+v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not finished after resume: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, m := range srv.Messages() {
		seen[m.To[0]]++
	}
	if len(seen) != n || srv.Count() != n {
		t.Fatalf("%d messages to %d recipients; want %d each once", srv.Count(), len(seen), n)
	}
}

func TestCancelRecordsTheRestAsCancelled(t *testing.T) {
	const n = 300
	srv, ks, st := slowCampaign(t, n, 100)
	rdb := redistest.Client(t)
	ctx := context.Background()
	waitCount(t, srv, 30)
	if _, err := Cancel(ctx, rdb, ks, "c"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var s store.Status
	for {
		s, _ = st.Status(ctx, "c")
		if s.Queued == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := srv.Count()
	time.Sleep(1500 * time.Millisecond)
	if s.State != store.StateCancelled || s.Queued != 0 || s.Delivered+s.Cancelled != n || s.Cancelled == 0 {
		t.Fatalf("status after cancel %+v", s)
	}
	if srv.Count() != after || int64(after) != s.Delivered {
		t.Fatalf("receiver %d (then %d) vs delivered %d", after, srv.Count(), s.Delivered)
	}
	if err := st.Pause(ctx, "c"); err == nil {
		t.Fatal("a cancelled campaign could be paused")
	}
}
