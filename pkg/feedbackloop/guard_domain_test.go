package feedbackloop_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// byDomainIndex scripts a receiver by the recipient's number: below
// bounce a 550 5.1.1 at RCPT; from 500 (from 100 at a recipient domain
// starting "small.") a 450 greylisting, so the campaign keeps sending.
func byDomainIndex(bounce int) func(string) error {
	big, small := byIndex(bounce, 500), byIndex(bounce, 100)
	return func(to string) error {
		if _, dom, _ := strings.Cut(to, "@"); strings.HasPrefix(dom, "small.") {
			return small(to)
		}
		return big(to)
	}
}

// launchFrom launches a VERP campaign from the address from to n
// recipients user%05d@rcptDomain (a recipient domain of its own, so one
// campaign's suppressions do not thin another's list).
func (e *env) launchFrom(t *testing.T, id string, n int, rcptDomain, from string) {
	t.Helper()
	path := enginetest.Campaign(t, t.TempDir(), id, n, rcptDomain)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(string(b), "news@sluice.test", from, 1) +
		fmt.Sprintf("verp: true\nreturn_path: %s\n", returnPath)
	enginetest.Write(t, path, spec)
	e.launchFile(t, path)
}

// complain sends an ARF report about recipient i of campaign id.
func (e *env) complain(t *testing.T, id, rcptDomain string, i int) {
	t.Helper()
	a := fmt.Sprintf("user%05d@%s", i, rcptDomain)
	e.send(t, fblAddr, arf(e.vrp(t, id, a), a))
}

// watchBriefly runs the periodic check for ten rounds.
func (e *env) watchBriefly() {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	e.loop.Watch(ctx, 20*time.Millisecond)
}

// states returns each campaign's state and pause reason.
func (e *env) states(t *testing.T, ids ...string) map[string]store.Status {
	t.Helper()
	out := map[string]store.Status{}
	for _, id := range ids {
		s, err := e.st.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

// TestDomainGuardrailPausesSmallCampaigns: three campaigns from one
// sending domain, each with 500 delivered and 2 complaints (0.4%, but
// each under min_delivered 1,000), together cross complaint_pause: the
// report that crosses it pauses all three, naming the domain; a campaign
// from another domain, and one resumed with --force, keep sending.
func TestDomainGuardrailPausesSmallCampaigns(t *testing.T) {
	e := setupWith(t, smtptest.Options{Rcpt: byDomainIndex(0), Discard: true, Quiet: true})
	ctx := context.Background()
	for _, c := range []string{"a", "b", "c", "o"} {
		from := "news@sluice.test"
		if c == "o" {
			from = "news@other.test"
		}
		e.launchFrom(t, "d"+c, 505, c+".example.test", from)
	}
	e.launchFrom(t, "df", 105, "small.example.test", "news@SLUICE.test")
	for _, c := range []string{"a", "b", "c", "o"} {
		e.waitCounts(t, "d"+c, 500, 5)
	}
	e.waitCounts(t, "df", 100, 5)
	if err := control.Pause(ctx, e.rdb, e.ks, "df"); err != nil {
		t.Fatal(err)
	}
	if _, err := control.ResumeForce(ctx, e.rdb, e.ks, "df"); err != nil {
		t.Fatal(err)
	}
	// sluice.test: 1,600 delivered over 4 campaigns. 4 complaints are
	// 0.25%: below complaint_pause.
	e.complain(t, "da", "a.example.test", 0)
	e.complain(t, "da", "a.example.test", 1)
	e.complain(t, "db", "b.example.test", 0)
	e.complain(t, "db", "b.example.test", 1)
	e.complain(t, "do", "o.example.test", 0) // other.test: 0.2% of 500
	e.complain(t, "do", "o.example.test", 1)
	all := []string{"da", "db", "dc", "do", "df"}
	for id, s := range e.states(t, all...) {
		if s.State != store.StateSending || s.PauseReason != "" {
			t.Fatalf("after 4 complaints at sluice.test: %s is %s (%q), want sending", id, s.State, s.PauseReason)
		}
	}
	// The 5th (0.31%) crosses it: every campaign of the domain is paused
	// before the reporter hears 250, but the forced one.
	e.complain(t, "dc", "c.example.test", 0)
	e.complain(t, "dc", "c.example.test", 1)
	want := "sending domain sluice.test: complaint rate 0.31% (5 complaints / 1600 delivered over 4 campaigns) reached guardrails.complaint_pause 0.30%"
	got := e.states(t, all...)
	for _, id := range []string{"da", "db", "dc"} {
		if s := got[id]; s.State != store.StatePaused || s.PauseReason != want {
			t.Errorf("%s: %s, reason %q; want paused, %q", id, s.State, s.PauseReason, want)
		}
	}
	if s := got["dc"]; s.Complaints != 2 || s.Delivered != 500 {
		t.Errorf("dc counters %+v, want 2 complaints of 500 delivered", s)
	}
	for _, id := range []string{"do", "df"} {
		if s := got[id]; s.State != store.StateSending || s.PauseReason != "" {
			t.Errorf("%s: %s, reason %q; want sending", id, s.State, s.PauseReason)
		}
	}
	// The periodic check agrees: it pauses neither again.
	e.watchBriefly()
	for id, s := range e.states(t, "do", "df") {
		if s.State != store.StateSending {
			t.Errorf("after the watch: %s is %s (%q), want sending", id, s.State, s.PauseReason)
		}
	}
	list, err := e.st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tot, err := feedbackloop.DomainsOf(ctx, e.st, list)
	if err != nil {
		t.Fatal(err)
	}
	if d := tot["sluice.test"]; d.Delivered != 1600 || d.Complaints != 6 || d.Campaigns != 4 {
		t.Errorf("sluice.test totals %+v, want 1600 delivered, 6 complaints, 4 campaigns", d)
	}
	if d := tot["other.test"]; d.Delivered != 500 || d.Complaints != 2 || d.Campaigns != 1 {
		t.Errorf("other.test totals %+v, want 500 delivered, 2 complaints, 1 campaign", d)
	}
}

// TestDomainGuardrailBelowThreshold: three campaigns of one domain, one
// complaint each (0.2% of 1,500): nothing is paused, by the reports or
// the periodic check.
func TestDomainGuardrailBelowThreshold(t *testing.T) {
	e := setupWith(t, smtptest.Options{Rcpt: byDomainIndex(0), Discard: true, Quiet: true})
	ids := []string{"ua", "ub", "uc"}
	for _, id := range ids {
		e.launchFrom(t, id, 505, id+".example.test", "news@sluice.test")
	}
	for _, id := range ids {
		e.waitCounts(t, id, 500, 5)
		e.complain(t, id, id+".example.test", 0)
	}
	e.watchBriefly()
	for id, s := range e.states(t, ids...) {
		if s.State != store.StateSending || s.PauseReason != "" || s.Complaints != 1 {
			t.Errorf("%s: %+v, want sending with 1 complaint", id, s)
		}
	}
}

// TestDomainGuardrailWatchPausesOnSMTPTimeBounces: bounces at SMTP time
// reach no report; the periodic check sums them per sending domain and
// pauses campaigns each under min_delivered.
func TestDomainGuardrailWatchPausesOnSMTPTimeBounces(t *testing.T) {
	// Each: 30 bounce at RCPT, 470 are delivered, 5 wait for a retry.
	e := setupWith(t, smtptest.Options{Rcpt: byDomainIndex(30), Discard: true, Quiet: true})
	ctx := context.Background()
	ids := []string{"ba", "bb", "bc"}
	for _, id := range ids {
		e.launchFrom(t, id, 505, id+".example.test", "news@sluice.test")
	}
	for _, id := range ids {
		e.waitCounts(t, id, 470, 5)
	}
	time.Sleep(100 * time.Millisecond)
	for id, s := range e.states(t, ids...) {
		if s.State != store.StateSending || s.Bounced != 30 {
			t.Fatalf("before the watch: %s %+v, want sending with 30 bounced", id, s)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go e.loop.Watch(wctx, 50*time.Millisecond)
	want := "sending domain sluice.test: bounce rate 6.38% (90 bounced / 1410 delivered over 3 campaigns) reached guardrails.bounce_pause 5.00%"
	deadline := time.Now().Add(2 * time.Second)
	for {
		paused := 0
		for _, s := range e.states(t, ids...) {
			if s.State == store.StatePaused {
				paused++
				if s.PauseReason != want {
					t.Fatalf("%s: reason %q, want %q", s.ID, s.PauseReason, want)
				}
			}
		}
		if paused == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch paused %d of %d campaigns within 2s", paused, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
