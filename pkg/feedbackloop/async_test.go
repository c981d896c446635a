package feedbackloop_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/verp"
)

// TestAsyncBounceOfATransactionalJob: a hard bounce naming a
// transactional job turns its record (GET /v1/messages/{id}) from
// delivered to bounced and suppresses the address on the transactional
// lane.
func TestAsyncBounceOfATransactionalJob(t *testing.T) {
	e := setup(t, func(string) error { return nil })
	ctx := context.Background()
	const to = "ann@example.test"
	msg := []byte("From: app@sluice.test\r\nTo: " + to + "\r\nSubject: Your code\r\nMessage-ID: <code-1@sluice.test>\r\n\r\n123456\r\n")
	q := intake.NewQueue(streams.New(e.rdb, e.ks, "test"), e.ks)
	jobs, err := q.Enqueue(ctx, "app@sluice.test", []string{to}, func(string) ([]byte, error) { return msg, nil })
	if err != nil {
		t.Fatal(err)
	}
	id := jobs[0].ID
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := intake.Lookup(ctx, e.rdb, e.ks, id)
		if err == nil && st.State == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transactional job %s not delivered: %+v %v", id, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, err := verp.Encode(returnPath, id)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retried report changes nothing twice
		e.send(t, v, dsn(v, to, "5.1.1", "550 5.1.1 <"+to+">: Recipient address rejected: User unknown"))
	}
	st, err := intake.Lookup(ctx, e.rdb, e.ks, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "bounced" || !st.Final || st.Last == nil || st.Last.Code != 550 || st.Last.Enhanced != "5.1.1" {
		t.Errorf("job after the bounce: %+v (last %+v), want bounced 550 5.1.1", st, st.Last)
	}
	ent, err := e.supp.Get(ctx, to)
	if err != nil || ent == nil || ent.Reason != suppression.HardBounce || ent.Lane != suppression.LaneTransactional || ent.Campaign != "" {
		t.Errorf("suppression %+v, %v; want a transactional hard_bounce", ent, err)
	}
}

// TestSoftBouncesFromReportsCount: asynchronous soft bounces about the
// mailbox (full) count toward the soft-bounce limit and suppress the
// address when it is reached; soft bounces about the message (too big)
// or the sender (blocked) do not count.
func TestSoftBouncesFromReportsCount(t *testing.T) {
	e := setupWith(t, smtptest.Options{Discard: true, Quiet: true}, func(c *config.Config) {
		c.Suppression.SoftBounceCount, c.Suppression.SoftBounceSpan = 3, 10*time.Millisecond
	})
	ctx := context.Background()
	e.launch(t, "soft", 3)
	e.waitCounts(t, "soft", 3, 0)
	report := func(i int, status, diag string) {
		v := e.vrp(t, "soft", addr(i))
		e.send(t, v, dsn(v, addr(i), status, diag))
		time.Sleep(10 * time.Millisecond) // spread over the span
	}
	for n := 1; n <= 3; n++ {
		report(0, "5.2.2", "552 5.2.2 Mailbox full")
		report(1, "5.3.4", "552 5.3.4 Message too big for system")
		report(2, "5.7.1", "550 5.7.1 Service unavailable; client host blocked using Spamhaus")
		ent, err := e.supp.Get(ctx, addr(0))
		if err != nil {
			t.Fatal(err)
		}
		if n < 3 && ent != nil {
			t.Fatalf("suppressed after %d soft bounces: %+v", n, ent)
		}
		if n == 3 && (ent == nil || ent.Reason != suppression.SoftBounceLimit || ent.Campaign != "soft") {
			t.Fatalf("after 3 soft bounces: %+v, want soft_bounce_limit of campaign soft", ent)
		}
	}
	for _, i := range []int{1, 2} {
		if ent, _ := e.supp.Get(ctx, addr(i)); ent != nil {
			t.Errorf("%s suppressed by reports about the message or the sender: %+v", addr(i), ent)
		}
	}
	// A soft bounce changes no record or counter.
	rec, err := e.st.Record(ctx, "soft", addr(0))
	if err != nil || rec.Status != "delivered" {
		t.Errorf("record %+v %v, want still delivered", rec, err)
	}
}
