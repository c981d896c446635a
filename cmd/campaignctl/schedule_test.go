package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestScheduledCampaignStartsOnTime(t *testing.T) {
	t.Parallel()
	const n = 20
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	startEngine(t, prefix, srv.Addr, 0)
	path := enginetest.Campaign(t, t.TempDir(), "at", n, "example.test")

	before := time.Now()
	out := mustCtl(t, prefix, "launch", path, "--at", "+3s")
	after := time.Now()
	if !strings.Contains(out, "scheduled: sending starts at") {
		t.Fatalf("launch said %q", out)
	}
	if st := status(t, prefix, "at"); st.State != store.StateScheduled || st.Queued != n {
		t.Fatalf("status right after launch %+v", st)
	}
	// The send time is 3 s after launch parsed --at, between before and
	// after; the engine's mover looks every half second.
	waitCount(t, srv, 1, 10*time.Second)
	first := time.Now()
	if first.Before(before.Add(3 * time.Second)) {
		t.Fatalf("first delivery %s before the send time", before.Add(3*time.Second).Sub(first))
	}
	if late := first.Sub(after.Add(3 * time.Second)); late > 1500*time.Millisecond {
		t.Fatalf("first delivery %s late", late)
	}
	waitStatus(t, prefix, "at", 10*time.Second, finished)
	eachOnce(t, srv, n, "example.test")
}

func TestCampaignDueWhileNoEngineRanStartsWithTheEngine(t *testing.T) {
	t.Parallel()
	const n = 20
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "due", n, "example.test")
	// send_at in the campaign file this time.
	sendAt := time.Now().Add(1500 * time.Millisecond)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("send_at: " + sendAt.UTC().Format(time.RFC3339Nano) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, prefix, "launch", path)
	if st := status(t, prefix, "due"); st.State != store.StateScheduled {
		t.Fatalf("status after launch %+v", st)
	}
	time.Sleep(time.Until(sendAt) + time.Second) // the time passes with no engine
	if st := status(t, prefix, "due"); st.State != store.StateSending || st.Queued != n || srv.Count() != 0 {
		t.Fatalf("status after send_at without engine %+v (receiver %d)", st, srv.Count())
	}
	started := time.Now()
	startEngine(t, prefix, srv.Addr, 0)
	// status --watch returns once the campaign is finished.
	out := mustCtl(t, prefix, "status", "due", "--watch", "--interval", "100ms")
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("took %s after the engine started", took)
	}
	// Piped: timestamped lines, the last one saying it is finished.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	lastLine := lines[len(lines)-1]
	if !strings.Contains(lastLine, "due finished 20/20 final (100%)") || !strings.Contains(lastLine, "delivered 20") {
		t.Errorf("status --watch printed:\n%s", out)
	}
	for _, l := range lines {
		if ts, _, _ := strings.Cut(l, " "); !isRFC3339(ts) {
			t.Errorf("line without a timestamp: %q", l)
		}
	}
	if st := status(t, prefix, "due"); !finished(st) || st.Delivered != n {
		t.Fatalf("after status --watch: %+v", st)
	}
	eachOnce(t, srv, n, "example.test")
}
