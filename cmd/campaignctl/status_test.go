package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/config"
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

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		300 * time.Millisecond:        "<1s",
		39 * time.Second:              "39s",
		4*time.Minute + 5*time.Second: "4m5s",
		3*time.Hour + 20*time.Minute:  "3h20m",
		52 * time.Hour:                "2d4h",
		100 * 24 * time.Hour:          "3 months",
		27060 * time.Hour:             "3 years",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
	if got := count(1, "valid recipient") + ", " + count(2, "duplicate"); got != "1 valid recipient, 2 duplicates" {
		t.Errorf("count: %q", got)
	}
}

// TestMeterPipedPrintsTheLastLineOnce: off a terminal the final progress
// line is not printed again when it was the last one shown.
func TestMeterPipedPrintsTheLastLineOnce(t *testing.T) {
	var b strings.Builder
	m := newMeter(&b)
	m.show("line 3: 3 enqueued")
	m.done("line 3: 3 enqueued")
	if b.String() != "line 3: 3 enqueued\n" {
		t.Fatalf("printed %q", b.String())
	}
}

// TestStatusShowsLinesAndWhy: a campaign whose provider is suspended (a
// TSS04 reply and a response rule): status names the line its jobs wait
// in, the suspension with the reply that caused it, and an ETA past it.
func TestStatusShowsLinesAndWhy(t *testing.T) {
	t.Parallel()
	const n = 30
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{Quiet: true, Rcpt: func(string) error {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "[TSS04] Messages from 127.0.0.1 temporarily deferred"}
	}})
	cfg := enginetest.Config(prefix, srv.Addr)
	key := "route:" + srv.Addr
	cfg.Throttle.Rules = []config.Rule{{Name: "tss04", Providers: []string{key}, Match: "TSS04", Action: "suspend", Duration: 10 * time.Minute}}
	enginetest.Start(t, cfg)
	path := enginetest.Campaign(t, t.TempDir(), "held", n, "example.test")
	mustCtl(t, prefix, "launch", path)

	var d struct {
		ETASeconds *float64 `json:"eta_seconds"`
		Lines      []struct {
			Key     string     `json:"key"`
			Waiting int64      `json:"waiting"`
			State   string     `json:"state"`
			Until   *time.Time `json:"until"`
			Reply   string     `json:"reply"`
		} `json:"lines"`
	}
	deadline := time.Now().Add(20 * time.Second)
	var out string
	for {
		out = mustCtl(t, prefix, "status", "held", "--json", "--detail")
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(d.Lines) == 1 && d.Lines[0].State == "suspended" && d.Lines[0].Waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no suspended line in status:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	l := d.Lines[0]
	if l.Key != key || l.Until == nil || time.Until(*l.Until) < 9*time.Minute || !strings.Contains(l.Reply, "TSS04") {
		t.Fatalf("line %+v\n%s", l, out)
	}
	if d.ETASeconds == nil || *d.ETASeconds < 9*60 {
		t.Fatalf("eta_seconds %v, want past the suspension\n%s", d.ETASeconds, out)
	}
	out = mustCtl(t, prefix, "status", "held")
	if !strings.Contains(out, "WAITING FOR") || !strings.Contains(out, key) || !strings.Contains(out, "suspended until") || !strings.Contains(out, "TSS04") {
		t.Fatalf("status:\n%s", out)
	}
}
