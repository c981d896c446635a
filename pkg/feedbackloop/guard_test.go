package feedbackloop_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// minDelivered100 judges rates from 100 delivered on, so the guardrail
// tests need a few hundred messages rather than thousands.
func minDelivered100(c *config.Config) { c.Guardrails.MinDelivered = 100 }

// byIndex scripts a receiver by the recipient's number: below bounce a
// 550 5.1.1 at RCPT, from grey on a 450 greylisting (the campaign keeps
// sending), else accepted.
func byIndex(bounce, grey int) func(string) error {
	return func(to string) error {
		var i int
		fmt.Sscanf(to, "user%05d@", &i)
		switch {
		case i < bounce:
			return smtptest.Reply(550, "5.1.1", "no such user")
		case i >= grey:
			return smtptest.Reply(450, "4.2.1", "greylisted, try again later")
		}
		return nil
	}
}

// waitCounts waits until the campaign has delivered and deferred as given.
func (e *env) waitCounts(t *testing.T, id string, delivered, deferred int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := e.st.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Delivered == delivered && s.Deferred == deferred {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s did not reach %d delivered, %d deferred: %+v", id, delivered, deferred, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) hardBounce(t *testing.T, id string, i int) {
	t.Helper()
	v := e.vrp(t, id, addr(i))
	e.send(t, v, dsn(v, addr(i), "5.1.1", "550 5.1.1 <"+addr(i)+">: Recipient address rejected: User unknown"))
}

// TestBouncePauseAfterMinDelivered: asynchronous hard bounces pause a
// campaign once bounced ÷ delivered reaches bounce_pause (5%), and not
// while fewer than min_delivered are delivered, whatever the rate.
func TestBouncePauseAfterMinDelivered(t *testing.T) {
	ctx := context.Background()
	t.Run("below min_delivered", func(t *testing.T) {
		e := setupWith(t, smtptest.Options{Rcpt: byIndex(0, 105), Discard: true, Quiet: true}) // min_delivered 1000
		e.launch(t, "small", 110)
		e.waitCounts(t, "small", 105, 5)
		for i := 0; i < 10; i++ { // 10 / 95 = 10.5%
			e.hardBounce(t, "small", i)
		}
		if s, _ := e.st.Status(ctx, "small"); s.Bounced != 10 || s.State != store.StateSending || s.PauseReason != "" {
			t.Fatalf("%+v, want sending with 10 bounced", s)
		}
	})
	t.Run("past min_delivered", func(t *testing.T) {
		e := setupWith(t, smtptest.Options{Rcpt: byIndex(0, 105), Discard: true, Quiet: true}, minDelivered100)
		e.launch(t, "bp", 110)
		e.waitCounts(t, "bp", 105, 5)
		for i := 0; i < 4; i++ { // 4 / 101 = 3.96%
			e.hardBounce(t, "bp", i)
		}
		if s, _ := e.st.Status(ctx, "bp"); s.State != store.StateSending || s.Bounced != 4 || s.Delivered != 101 {
			t.Fatalf("after 4 bounces: %+v, want sending, 4 bounced of 101 delivered", s)
		}
		e.hardBounce(t, "bp", 4) // 5 / 100 = 5%: paused before the reporter hears 250
		s, err := e.st.Status(ctx, "bp")
		if err != nil {
			t.Fatal(err)
		}
		if s.State != store.StatePaused || !strings.Contains(s.PauseReason, "bounce rate 5.00% (5 bounced / 100 delivered)") ||
			!strings.Contains(s.PauseReason, "bounce_pause 5.00%") {
			t.Errorf("after the 5th bounce: state %s, reason %q", s.State, s.PauseReason)
		}
	})
}

// TestWatchPausesOnSMTPTimeBounces: bounces at SMTP time reach no
// report; the periodic check over all sending campaigns pauses them.
func TestWatchPausesOnSMTPTimeBounces(t *testing.T) {
	// 8 bounce at RCPT, 107 are delivered (7.5%), 5 wait for a retry.
	e := setupWith(t, smtptest.Options{Rcpt: byIndex(8, 115), Discard: true, Quiet: true}, minDelivered100)
	ctx := context.Background()
	e.launch(t, "sb", 120)
	e.waitCounts(t, "sb", 107, 5)
	time.Sleep(200 * time.Millisecond)
	if s, _ := e.st.Status(ctx, "sb"); s.State != store.StateSending || s.Bounced != 8 {
		t.Fatalf("before the watch: %+v, want sending with 8 bounced", s)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := time.Now()
	go e.loop.Watch(wctx, 50*time.Millisecond)
	for {
		s, err := e.st.Status(ctx, "sb")
		if err != nil {
			t.Fatal(err)
		}
		if s.State == store.StatePaused {
			if !strings.Contains(s.PauseReason, "bounce rate 7.48% (8 bounced / 107 delivered)") {
				t.Errorf("pause reason %q", s.PauseReason)
			}
			break
		}
		if time.Since(started) > 2*time.Second {
			t.Fatalf("the watch did not pause the campaign within 2s: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
