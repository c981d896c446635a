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
	waitTxState(t, e, id, "delivered")
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

// TestAsyncBounceOfATransactionalJobByMessageID: a transactional message
// to two recipients, sent with the client's own Message-ID and a plain
// return path (no VERP), is delivered; then a DSN about one recipient
// that quotes only the original's Message-ID arrives at the inbound
// listener. The index written at enqueue finds that recipient's job: its
// record turns bounced and the address is suppressed; the other
// recipient's job, same Message-ID, stays delivered.
func TestAsyncBounceOfATransactionalJobByMessageID(t *testing.T) {
	e := setup(t, func(string) error { return nil })
	ctx := context.Background()
	to := []string{"ann@example.test", "bob@example.test"}
	const mid = "<Order-42.Receipt@shop.sluice.test>"
	msg := []byte("From: app@sluice.test\r\nTo: ann@example.test, bob@example.test\r\nSubject: Your receipt\r\nMessage-ID: " + mid + "\r\n\r\nThanks\r\n")
	q := intake.NewQueue(streams.New(e.rdb, e.ks, "test"), e.ks)
	jobs, err := q.Enqueue(ctx, returnPath, to, func(string) ([]byte, error) { return msg, nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		waitTxState(t, e, j.ID, "delivered")
	}
	bounce := "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n" +
		"To: " + returnPath + "\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-tx@mx.example.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n" +
		"Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown\r\n\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
		"From: app@sluice.test\r\nTo: ann@example.test, bob@example.test\r\nSubject: Your receipt\r\nMessage-ID: " + mid + "\r\n\r\n" +
		"--b1--\r\n"
	for range 2 { // a retried report changes nothing twice
		e.send(t, returnPath, bounce)
	}
	for i, j := range jobs {
		st, err := intake.Lookup(ctx, e.rdb, e.ks, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"delivered", "bounced"}[i]
		if st.State != want {
			t.Errorf("%s (%s): %s, want %s", j.To, j.ID, st.State, want)
		}
		if i == 1 && (st.Last == nil || st.Last.Code != 550 || st.Last.Enhanced != "5.1.1") {
			t.Errorf("%s: last %+v, want 550 5.1.1", j.To, st.Last)
		}
	}
	ent, err := e.supp.Get(ctx, "bob@example.test")
	if err != nil || ent == nil || ent.Reason != suppression.HardBounce || ent.Lane != suppression.LaneTransactional || ent.Code != 550 {
		t.Errorf("bob's suppression %+v, %v; want a transactional hard_bounce 550", ent, err)
	}
	if ent, _ := e.supp.Get(ctx, "ann@example.test"); ent != nil {
		t.Errorf("ann suppressed: %+v", ent)
	}
}

// waitTxState waits until transactional job id is in state.
func waitTxState(t *testing.T, e *env, id, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := intake.Lookup(context.Background(), e.rdb, e.ks, id)
		if err == nil && st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("transactional job %s not %s: %+v %v", id, state, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
