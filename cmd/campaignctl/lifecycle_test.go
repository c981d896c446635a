package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// waitStill waits until the receiver's count has not moved for still and
// returns it; it fails if the count was still moving at deadline.
func waitStill(t *testing.T, srv *smtptest.Server, still time.Duration, deadline time.Time) int {
	t.Helper()
	n, changed := srv.Count(), time.Now()
	for {
		time.Sleep(20 * time.Millisecond)
		if c := srv.Count(); c != n {
			n, changed = c, time.Now()
		}
		if changed.After(deadline) {
			t.Fatalf("receiver still counting at %s: %d messages", deadline.Format(time.StampMilli), n)
		}
		if time.Since(changed) >= still {
			return n
		}
	}
}

func TestLaunchPauseResumeDeliversEachRecipientOnce(t *testing.T) {
	t.Parallel()
	const n = 400
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "pr", n, "example.test")
	startEngine(t, prefix, srv.Addr, 100) // ~4 s of sending: time to pause
	out := mustCtl(t, prefix, "launch", path)
	if !strings.Contains(out, "campaign pr launched") || !strings.Contains(out, "400 enqueued") {
		t.Fatalf("launch said %q", out)
	}
	waitCount(t, srv, 30, 10*time.Second)

	pausedAt := time.Now()
	mustCtl(t, prefix, "pause", "pr")
	// Deliveries stop within 5 s (engines see the pause within a second;
	// messages already in a session finish), while the receiver counts.
	atPause := waitStill(t, srv, 1500*time.Millisecond, pausedAt.Add(5*time.Second))
	if atPause >= n {
		t.Fatalf("all %d delivered before the pause took effect", atPause)
	}
	time.Sleep(time.Second)
	if got := srv.Count(); got != atPause {
		t.Fatalf("deliveries went on while paused: %d then %d", atPause, got)
	}
	if st := status(t, prefix, "pr"); st.State != store.StatePaused || st.Delivered != int64(atPause) || st.Queued != int64(n-atPause) {
		t.Fatalf("status while paused %+v (receiver %d)", st, atPause)
	}

	out = mustCtl(t, prefix, "resume", "pr")
	if !strings.Contains(out, "resumed") {
		t.Fatalf("resume said %q", out)
	}
	st := waitStatus(t, prefix, "pr", 20*time.Second, finished)
	if st.Delivered != n || st.Total != n {
		t.Fatalf("finished with %+v", st)
	}
	eachOnce(t, srv, n, "example.test")
}

func TestCancelRecordsTheRestAsCancelled(t *testing.T) {
	t.Parallel()
	const n = 300
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "cx", n, "example.test")
	startEngine(t, prefix, srv.Addr, 100)
	mustCtl(t, prefix, "launch", path)
	waitCount(t, srv, 30, 10*time.Second)

	out := mustCtl(t, prefix, "cancel", "cx", "--wait", "15s")
	if !strings.Contains(out, "nothing left queued") {
		t.Fatalf("cancel said %q", out)
	}
	st := status(t, prefix, "cx")
	if st.State != store.StateCancelled || st.Queued != 0 || st.Cancelled == 0 || st.Delivered+st.Cancelled != n {
		t.Fatalf("status after cancel %+v", st)
	}
	after := srv.Count()
	time.Sleep(1500 * time.Millisecond)
	if srv.Count() != after || int64(after) != st.Delivered {
		t.Fatalf("receiver %d (then %d) vs %d delivered", after, srv.Count(), st.Delivered)
	}
	rows := reportRows(t, prefix, "cx")
	byOutcome := map[string]int64{}
	for _, r := range rows {
		byOutcome[r["outcome"]]++
	}
	if len(rows) != n || byOutcome["cancelled"] != st.Cancelled || byOutcome["delivered"] != st.Delivered {
		t.Fatalf("report has %d rows %v; status %+v", len(rows), byOutcome, st)
	}
	// Cancelled is final: it cannot be paused or resumed.
	if _, stderr, code := ctl(t, prefix, "resume", "cx"); code != 1 || !strings.Contains(stderr, "not paused") {
		t.Fatalf("resume of a cancelled campaign: exit %d %q", code, stderr)
	}
}
