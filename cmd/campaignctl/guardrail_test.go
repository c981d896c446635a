package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// TestGuardrailPausedCampaign: a campaign the bounce guardrail paused
// shows its rates and the reason in status, status --json --detail and
// list; plain resume refuses it, resume --force resumes it.
func TestGuardrailPausedCampaign(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	// 6 bounce at RCPT, 49 are delivered, 5 wait for a retry.
	srv := smtptest.Start(t, smtptest.Options{Discard: true, Quiet: true, Rcpt: func(to string) error {
		var i int
		fmt.Sscanf(to, "user%05d@", &i)
		switch {
		case i < 6:
			return smtptest.Reply(550, "5.1.1", "no such user")
		case i >= 55:
			return smtptest.Reply(450, "4.2.1", "greylisted")
		}
		return nil
	}})
	startEngine(t, prefix, srv.Addr, 0)
	mustCtl(t, prefix, "launch", "-q", enginetest.Campaign(t, t.TempDir(), "gr", 60, "example.test"))
	waitStatus(t, prefix, "gr", 20*time.Second, func(s store.Status) bool { return s.Delivered == 49 && s.Deferred == 5 })

	// The engine's periodic guardrail check, with min_delivered 10.
	loop := feedbackloop.New(rdb, ks, suppression.New(rdb, ks),
		config.Guardrails{ComplaintWarn: 0.001, ComplaintPause: 0.003, BouncePause: 0.05, MinDelivered: 10},
		suppression.SoftLimit{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	go loop.Watch(ctx, 50*time.Millisecond)
	st := waitStatus(t, prefix, "gr", 5*time.Second, func(s store.Status) bool { return s.State == store.StatePaused })
	cancel()
	const why = "bounce rate 12.24% (6 bounced / 49 delivered) reached guardrails.bounce_pause 5.00%"
	if st.PauseReason != why {
		t.Fatalf("pause reason %q, want %q", st.PauseReason, why)
	}

	out := mustCtl(t, prefix, "status", "gr")
	if !strings.Contains(out, "complaints 0 (0.00% of delivered)  bounce rate 12.24% of delivered") ||
		!strings.Contains(out, "paused by a guardrail: "+why) || !strings.Contains(out, "resume --force gr") {
		t.Errorf("status gr:\n%s", out)
	}
	// Without ID: the sending domain's sums below the table.
	out = mustCtl(t, prefix, "status")
	if !strings.Contains(out, "SENDING DOMAIN") || !regexp.MustCompile(`sluice\.test +1 +49 +6 +0 +0\.00% +12\.24%`).MatchString(out) {
		t.Errorf("status:\n%s", out)
	}
	var d struct {
		PauseReason   string   `json:"pause_reason"`
		ComplaintRate *float64 `json:"complaint_rate"`
		BounceRate    *float64 `json:"bounce_rate"`
	}
	out = mustCtl(t, prefix, "status", "gr", "--json", "--detail")
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("status --json --detail: %v\n%s", err, out)
	}
	if d.PauseReason != why || d.ComplaintRate == nil || *d.ComplaintRate != 0 || d.BounceRate == nil || math.Abs(*d.BounceRate-6.0/49) > 1e-9 {
		t.Errorf("status --json --detail:\n%s", out)
	}
	out = mustCtl(t, prefix, "list")
	if !strings.Contains(out, "COMPLAINTS") || !strings.Contains(out, "BOUNCES") || !strings.Contains(out, "12.24%") ||
		!strings.Contains(out, "gr paused by a guardrail: "+why) {
		t.Errorf("list:\n%s", out)
	}
	var l []struct {
		ID         string  `json:"id"`
		BounceRate float64 `json:"bounce_rate"`
	}
	out = mustCtl(t, prefix, "list", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l) != 1 || math.Abs(l[0].BounceRate-6.0/49) > 1e-9 {
		t.Errorf("list --json: %v\n%s", err, out)
	}

	out, stderr, code := ctl(t, prefix, "resume", "gr")
	if code != 1 || !strings.Contains(stderr, "guardrail") || !strings.Contains(stderr, "resume --force gr") {
		t.Errorf("plain resume: exit %d\n%s%s", code, out, stderr)
	}
	if st := status(t, prefix, "gr"); st.State != store.StatePaused {
		t.Fatalf("plain resume changed the state: %+v", st)
	}
	mustCtl(t, prefix, "resume", "gr", "--force")
	if st := status(t, prefix, "gr"); st.State != store.StateSending || st.PauseReason != "" {
		t.Errorf("after resume --force: %+v", st)
	}
}
