package feedbackloop_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/inbound"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/verp"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

const (
	returnPath = "bounces@bounce.sluice.test"
	fblAddr    = "fbl@bounce.sluice.test"
)

// rcptLog counts every RCPT TO a receiver saw.
type rcptLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func (l *rcptLog) note(to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[strings.ToLower(to)]++
}

func (l *rcptLog) count(to string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[to]
}

// env is a redis-server, an engine delivering to one receiver, and the
// inbound listener applying reports with a Loop.
type env struct {
	rdb  *redis.Client
	ks   keyspace.Space
	st   *store.Store
	supp *suppression.List
	loop *feedbackloop.Loop
	in   string // inbound listener address
}

func setup(t *testing.T, rcpt func(string) error) *env {
	t.Helper()
	return setupWith(t, smtptest.Options{Rcpt: rcpt, Discard: true, Quiet: true})
}

// setupWith is setup with the receiver scripted by opts and the engine's
// configuration changed by each of tune (guardrails, soft-bounce limit).
func setupWith(t *testing.T, opts smtptest.Options, tune ...func(*config.Config)) *env {
	t.Helper()
	e := &env{rdb: redistest.Client(t), ks: keyspace.Space(redistest.Prefix(t))}
	e.st = store.New(e.rdb, e.ks)
	e.supp = suppression.New(e.rdb, e.ks)
	srv := smtptest.Start(t, opts)
	cfg := enginetest.Config(string(e.ks), srv.Addr)
	for _, f := range tune {
		f(cfg)
	}
	enginetest.Start(t, cfg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	loop := feedbackloop.New(e.rdb, e.ks, e.supp, cfg.Guardrails,
		suppression.SoftLimit{Count: cfg.Suppression.SoftBounceCount, Span: cfg.Suppression.SoftBounceSpan}, log).
		WithWarmup(warmup.Plans(cfg))
	in, err := inbound.New(inbound.Config{ReturnPaths: []string{returnPath}, FBLAddresses: []string{fblAddr},
		Rate: 10000, Burst: 10000}, loop.Handle, log)
	if err != nil {
		t.Fatal(err)
	}
	e.loop = loop
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = in.Serve(l) }()
	t.Cleanup(func() { _ = in.Close() })
	e.in = l.Addr().String()
	return e
}

// launch launches a VERP campaign of n recipients user%05d@example.test.
func (e *env) launch(t *testing.T, id string, n int) {
	t.Helper()
	e.launchYAML(t, id, n, fmt.Sprintf("verp: true\nreturn_path: %s\n", returnPath))
}

// launchYAML launches a campaign of n recipients user%05d@example.test
// with extra appended to its file.
func (e *env) launchYAML(t *testing.T, id string, n int, extra string) {
	t.Helper()
	path := enginetest.Campaign(t, t.TempDir(), id, n, "example.test")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, extra)
	f.Close()
	e.launchFile(t, path)
}

// launchFile launches the campaign file at path, skipping suppressed
// recipients.
func (e *env) launchFile(t *testing.T, path string) {
	t.Helper()
	_, err := launch.Launch(context.Background(), e.rdb, e.ks, filepath.Clean(path), launch.Options{
		Suppressed: func(ctx context.Context, lane string, addrs []string) ([]bool, error) {
			res, err := e.supp.Check(ctx, lane, addrs)
			out := make([]bool, len(res))
			for i, x := range res {
				out[i] = x != nil
			}
			return out, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// vrp is the VERP return path the engine used for addr in campaign id.
func (e *env) vrp(t *testing.T, id, addr string) string {
	t.Helper()
	rec, err := e.st.Record(context.Background(), id, addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := verp.Encode(returnPath, rec.JobID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send delivers one message to the inbound listener, as a bounce would
// come: MAIL FROM:<>.
func (e *env) send(t *testing.T, rcpt, msg string) {
	t.Helper()
	c, err := smtp.Dial(e.in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("", []string{rcpt}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send to inbound %s: %v", rcpt, err)
	}
}

// dsn is a minimal RFC 3464 report of a failure for failed, sent to the
// VERP address vrp.
func dsn(vrp, failed, status, diag string) string {
	return "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n" +
		"To: " + vrp + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Message-ID: <dsn-" + failed + ">\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.test\r\n\r\n" +
		"Final-Recipient: rfc822; " + failed + "\r\nAction: failed\r\nStatus: " + status + "\r\n" +
		"Diagnostic-Code: smtp; " + diag + "\r\n\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
		"Return-Path: <" + vrp + ">\r\nFrom: news@sluice.test\r\nTo: " + failed + "\r\nSubject: Hello\r\n\r\n" +
		"--b1--\r\n"
}

// arf is a minimal RFC 5965 abuse report about the message sent to rcpt
// with envelope sender vrp, quoting its headers.
func arf(vrp, rcpt string) string { return arfWith(vrp, rcpt, "<orig-"+rcpt+">") }

// arfWith is arf quoting the original's Message-ID mid.
func arfWith(vrp, rcpt, mid string) string {
	return "From: <feedback@fbl.example.test>\r\n" +
		"To: " + fblAddr + "\r\n" +
		"Subject: FW: Hello\r\n" +
		"Message-ID: <arf-" + rcpt + ">\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"f1\"\r\n\r\n" +
		"--f1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n" +
		"--f1\r\nContent-Type: message/feedback-report\r\n\r\n" +
		"Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n" +
		"Original-Mail-From: <" + vrp + ">\r\nOriginal-Rcpt-To: <" + rcpt + ">\r\n" +
		"Arrival-Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nSource-IP: 192.0.2.1\r\n\r\n" +
		"--f1\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Return-Path: <" + vrp + ">\r\nFrom: \"Sluice News\" <news@sluice.test>\r\nTo: " + rcpt + "\r\n" +
		"Subject: Hello\r\nMessage-ID: " + mid + "\r\n\r\nHello!\r\n" +
		"--f1--\r\n"
}

func addr(i int) string { return fmt.Sprintf("user%05d@example.test", i) }

// TestAsyncBouncesAndComplaintsEndToEnd is issue #14's acceptance test 2.
func TestAsyncBouncesAndComplaintsEndToEnd(t *testing.T) {
	var seen rcptLog
	e := setup(t, func(to string) error { seen.note(to); return nil })
	ctx := context.Background()
	const n = 100
	e.launch(t, "fb1", n)
	s := enginetest.WaitFinished(t, e.st, "fb1", 30*time.Second)
	if s.Delivered != n {
		t.Fatalf("first campaign: %+v", s)
	}
	for i := 0; i < 20; i++ {
		e.send(t, e.vrp(t, "fb1", addr(i)), dsn(e.vrp(t, "fb1", addr(i)), addr(i), "5.1.1", "550 5.1.1 <"+addr(i)+">: Recipient address rejected: User unknown"))
	}
	for i := 20; i < 25; i++ {
		e.send(t, fblAddr, arf(e.vrp(t, "fb1", addr(i)), addr(i)))
	}
	// Sending the same reports again changes nothing (senders retry).
	e.send(t, e.vrp(t, "fb1", addr(0)), dsn(e.vrp(t, "fb1", addr(0)), addr(0), "5.1.1", "550 5.1.1 User unknown"))
	e.send(t, fblAddr, arf(e.vrp(t, "fb1", addr(20)), addr(20)))

	for i := 0; i < 25; i++ {
		rec, err := e.st.Record(ctx, "fb1", addr(i))
		if err != nil {
			t.Fatal(err)
		}
		ent, err := e.supp.Get(ctx, addr(i))
		if err != nil || ent == nil {
			t.Fatalf("%s not suppressed: %v", addr(i), err)
		}
		if i < 20 {
			if rec.Status != "bounced" || rec.Code != 550 || rec.Enhanced != "5.1.1" || rec.Reason != "user-unknown" {
				t.Errorf("%s: record %+v, want bounced 550 5.1.1 user-unknown", addr(i), rec)
			}
			if ent.Reason != suppression.HardBounce || ent.Code != 550 || ent.Enhanced != "5.1.1" || ent.Campaign != "fb1" {
				t.Errorf("%s: suppression %+v, want hard_bounce 550 5.1.1 of fb1", addr(i), ent)
			}
		} else {
			if rec.Status != "delivered" || rec.Reason != feedbackloop.ComplaintReason {
				t.Errorf("%s: record %+v, want delivered, reason complaint", addr(i), rec)
			}
			if ent.Reason != suppression.Complaint {
				t.Errorf("%s: suppression %+v, want complaint", addr(i), ent)
			}
		}
	}
	if ent, _ := e.supp.Get(ctx, addr(25)); ent != nil {
		t.Errorf("%s suppressed without a report: %+v", addr(25), ent)
	}
	s, err := e.st.Status(ctx, "fb1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Delivered != n-20 || s.Bounced != 20 || s.Complaints != 5 || s.Total != n || s.Queued != 0 || s.State != store.StateFinished {
		t.Errorf("counters %+v, want delivered %d, bounced 20, complaints 5", s, n-20)
	}
	// The report agrees with the counters.
	var rows, bounced, delivered, complaints int64
	if err := report.Scan(ctx, e.rdb, e.st.Tally("fb1"), 100, func(r report.Row) error {
		rows++
		switch r.Outcome {
		case "bounced":
			bounced++
		case "delivered":
			delivered++
		}
		if r.Reason == feedbackloop.ComplaintReason {
			complaints++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if rows != s.Total || bounced != s.Bounced || delivered != s.Delivered || complaints != s.Complaints {
		t.Errorf("report: %d rows, %d bounced, %d delivered, %d complaints; counters %+v", rows, bounced, delivered, complaints, s)
	}
	dom, err := e.rdb.HGetAll(ctx, e.ks.Own("fb:sluice.test")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if dom[feedbackloop.DomainComplaints] != "5" || dom[feedbackloop.DomainBounces] != "20" {
		t.Errorf("sending domain counters %v, want 5 complaints, 20 bounces", dom)
	}

	// A following campaign to the same list makes no attempt to the 25.
	e.launch(t, "fb2", n)
	s2 := enginetest.WaitFinished(t, e.st, "fb2", 30*time.Second)
	if s2.Suppressed != 25 || s2.Delivered != n-25 {
		t.Errorf("second campaign %+v, want 25 suppressed", s2)
	}
	for i := 0; i < n; i++ {
		want := 2
		if i < 25 {
			want = 1
		}
		if got := seen.count(addr(i)); got != want {
			t.Errorf("%s attempted %d times over both campaigns, want %d", addr(i), got, want)
		}
	}
}

// TestComplaintGuardrailPauses is issue #14's acceptance test 3: the
// report that takes the complaint rate past 0.3% after 1,000 delivered
// pauses the campaign within 2 s, status says why, and only resume
// --force resumes it.
func TestComplaintGuardrailPauses(t *testing.T) {
	// 1,100 are delivered; 100 are greylisted and wait for a retry, so
	// the campaign is still sending.
	e := setup(t, func(to string) error {
		var i int
		fmt.Sscanf(to, "user%05d@", &i)
		if i >= 1100 {
			return smtptest.Reply(450, "4.2.1", "greylisted, try again later")
		}
		return nil
	})
	ctx := context.Background()
	e.launch(t, "gr1", 1200)
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := e.st.Status(ctx, "gr1")
		if err != nil {
			t.Fatal(err)
		}
		if s.Delivered == 1100 && s.Deferred == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign did not reach 1100 delivered, 100 deferred: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// 3 of 1,100 is 0.27%: below the pause level.
	for i := 0; i < 3; i++ {
		e.send(t, fblAddr, arf(e.vrp(t, "gr1", addr(i)), addr(i)))
	}
	time.Sleep(100 * time.Millisecond)
	if s, _ := e.st.Status(ctx, "gr1"); s.State != store.StateSending || s.Complaints != 3 {
		t.Fatalf("after 3 complaints: %+v, want sending with 3 complaints", s)
	}
	// The 4th (0.36%) crosses it.
	sent := time.Now()
	e.send(t, fblAddr, arf(e.vrp(t, "gr1", addr(3)), addr(3)))
	for {
		s, err := e.st.Status(ctx, "gr1")
		if err != nil {
			t.Fatal(err)
		}
		if s.State == store.StatePaused {
			if !strings.Contains(s.PauseReason, "complaint rate 0.36%") || !strings.Contains(s.PauseReason, "complaint_pause 0.30%") {
				t.Errorf("pause reason %q", s.PauseReason)
			}
			t.Logf("paused %v after the report: %s", time.Since(sent).Round(time.Millisecond), s.PauseReason)
			break
		}
		if time.Since(sent) > 2*time.Second {
			t.Fatalf("not paused 2s after the report that crossed 0.3%%: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := control.Resume(ctx, e.rdb, e.ks, "gr1"); !errors.Is(err, store.ErrGuardrail) {
		t.Fatalf("plain resume of a guardrail-paused campaign: %v, want ErrGuardrail", err)
	}
	if _, err := control.ResumeForce(ctx, e.rdb, e.ks, "gr1"); err != nil {
		t.Fatal(err)
	}
	// Overridden: a further complaint does not pause it again.
	e.send(t, fblAddr, arf(e.vrp(t, "gr1", addr(4)), addr(4)))
	s, err := e.st.Status(ctx, "gr1")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != store.StateSending || s.PauseReason != "" || s.Complaints != 5 {
		t.Errorf("after resume --force and one more complaint: %+v", s)
	}
}
