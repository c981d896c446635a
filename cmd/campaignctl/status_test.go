package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/store"

	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func isRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// TestStatusETACountsDelayedJobs: deferred recipients wait in the delayed
// set for their retry (5 minutes); the ETA must not end before that.
func TestStatusETACountsDelayedJobs(t *testing.T) {
	t.Parallel()
	const n = 12
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		if strings.HasPrefix(to, "user0000") { // user00000..user00009
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try later"}
		}
		return nil
	}})
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Lanes.Marketing.Retry = []time.Duration{5 * time.Minute}
	enginetest.Start(t, cfg)
	path := enginetest.Campaign(t, t.TempDir(), "slow", n, "example.test")
	mustCtl(t, prefix, "launch", path)
	waitStatus(t, prefix, "slow", 20*time.Second, func(st store.Status) bool { return st.Deferred == 10 && st.Delivered == 2 })

	var d struct {
		Queued       int64      `json:"queued"`
		ETASeconds   *float64   `json:"eta_seconds"`
		Delayed      int64      `json:"delayed"`
		DelayedUntil *time.Time `json:"delayed_until"`
	}
	out := mustCtl(t, prefix, "status", "slow", "--json", "--detail")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d.Delayed != 10 || d.DelayedUntil == nil || time.Until(*d.DelayedUntil) < 4*time.Minute {
		t.Fatalf("delayed %d until %v\n%s", d.Delayed, d.DelayedUntil, out)
	}
	if d.ETASeconds == nil || *d.ETASeconds < 240 {
		t.Fatalf("eta_seconds %v, want the retries' 5 minutes\n%s", d.ETASeconds, out)
	}
	out = mustCtl(t, prefix, "status", "slow")
	if !strings.Contains(out, "ETA 4m") && !strings.Contains(out, "ETA 5m") || !strings.Contains(out, "(10 waiting for retries until ") {
		t.Fatalf("status:\n%s", out)
	}
}

// TestStatusWatchJSONLines: --watch --json prints one JSON document per
// line per refresh, the last one final.
func TestStatusWatchJSONLines(t *testing.T) {
	t.Parallel()
	const n = 30
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "jl", n, "example.test")
	mustCtl(t, prefix, "launch", path)
	startEngine(t, prefix, srv.Addr, 20) // 1.5 s at 20/s
	out := mustCtl(t, prefix, "status", "jl", "--watch", "--json", "--interval", "200ms")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("want a document per refresh, got %d lines:\n%s", len(lines), out)
	}
	var st store.Status
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &st); err != nil || st.ID != "jl" {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
	}
	if !finished(st) || st.Delivered != n {
		t.Fatalf("last line %+v", st)
	}
}
