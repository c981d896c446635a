package inbound

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/feedback"
	"github.com/sluice-mta/sluice/pkg/verp"
)

// collector is a handler that keeps what it is given.
type collector struct {
	mu   sync.Mutex
	reps []Report
	fail error
}

func (c *collector) handle(_ context.Context, r Report) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.reps = append(c.reps, r)
	return nil
}

func (c *collector) all() []Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Report(nil), c.reps...)
}

func start(t *testing.T, cfg Config, h Handler) string {
	t.Helper()
	if cfg.ReturnPaths == nil {
		cfg.ReturnPaths = []string{"bounces@mail.sluice.test"}
		cfg.FBLAddresses = []string{"fbl@mail.sluice.test"}
	}
	s, err := New(cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return l.Addr().String()
}

// send delivers one message with a go-smtp client (no STARTTLS: the
// listener offers none, as most bounce senders need none).
func send(addr string, to []string, r *strings.Reader) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("", nil); err != nil {
		return err
	}
	for _, a := range to {
		if err := c.Rcpt(a, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := r.WriteTo(w); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func dsn(rcptTo, failed, status, diag string) string {
	return "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n" +
		"To: " + rcptTo + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example.test\r\n\r\n" +
		"Final-Recipient: rfc822; " + failed + "\r\nAction: failed\r\nStatus: " + status + "\r\n" +
		"Diagnostic-Code: smtp; " + diag + "\r\n\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
		"Return-Path: <" + rcptTo + ">\r\nMessage-ID: <m1@sluice.test>\r\nTo: " + failed + "\r\n\r\n" +
		"--b1--\r\n"
}

func TestRefusesRelayAndUnknown(t *testing.T) {
	addr := start(t, Config{Rate: 1000}, (&collector{}).handle)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rcpt string
		code int
		enh  smtp.EnhancedCode
	}{
		{"someone@gmail.example", 550, smtp.EnhancedCode{5, 7, 1}}, // not a relay
		{"postmaster@mail.sluice.test", 550, smtp.EnhancedCode{5, 1, 1}},
		{"bouncesx+abc@mail.sluice.test", 550, smtp.EnhancedCode{5, 1, 1}},
	} {
		err := c.Rcpt(tc.rcpt, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != tc.code || se.EnhancedCode != tc.enh {
			t.Errorf("RCPT TO:<%s> = %v, want %d %v", tc.rcpt, err, tc.code, tc.enh)
		}
	}
	for _, ok := range []string{"bounces@mail.sluice.test", "BOUNCES+abc@Mail.Sluice.Test", "fbl@mail.sluice.test"} {
		if err := c.Rcpt(ok, nil); err != nil {
			t.Errorf("RCPT TO:<%s> = %v, want accepted", ok, err)
		}
	}
}

func TestDSNAcceptedAndClassified(t *testing.T) {
	col := &collector{}
	addr := start(t, Config{Rate: 1000}, col.handle)
	ret, err := verp.Encode("bounces@mail.sluice.test", "spring-sale/12")
	if err != nil {
		t.Fatal(err)
	}
	msg := dsn(ret, "kijitora@example.test", "5.1.1", "550 5.1.1 <kijitora@example.test>: Recipient address rejected: User unknown")
	if err := send(addr, []string{ret}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	reps := col.all()
	if len(reps) != 1 {
		t.Fatalf("got %d reports, want 1", len(reps))
	}
	r := reps[0]
	if r.JobID != "spring-sale/12" || r.RcptTo != ret || r.MailFrom != "" || r.RemoteIP != "127.0.0.1" || r.Format != feedback.FormatDSN ||
		r.Original.MessageID != "m1@sluice.test" {
		t.Errorf("report %+v", r)
	}
	want := feedback.Recipient{Address: "kijitora@example.test", Kind: feedback.Hard, Reason: feedback.UserUnknown, Status: "5.1.1", Code: 550,
		Action: "failed", Text: "550 5.1.1 <kijitora@example.test>: Recipient address rejected: User unknown"}
	if len(r.Recipients) != 1 || r.Recipients[0] != want {
		t.Errorf("recipients %+v, want %+v", r.Recipients, want)
	}
}

func TestHandlerErrorIs451(t *testing.T) {
	col := &collector{fail: errors.New("redis down")}
	addr := start(t, Config{Rate: 1000}, col.handle)
	err := send(addr, []string{"bounces@mail.sluice.test"},
		strings.NewReader(dsn("bounces@mail.sluice.test", "a@example.test", "5.2.2", "552 5.2.2 Mailbox full")))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 {
		t.Fatalf("SendMail = %v, want 451", err)
	}
}

func TestSizeAndRateLimits(t *testing.T) {
	col := &collector{}
	addr := start(t, Config{Rate: 0.001, Burst: 2, MaxMessageBytes: 2000}, col.handle)
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 50)
	err := send(addr, []string{"bounces@mail.sluice.test"}, strings.NewReader(big))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 {
		t.Fatalf("oversized message: %v, want 552", err)
	}
	// The oversized one used the first token; one more is left.
	small := dsn("bounces@mail.sluice.test", "a@example.test", "5.2.2", "552 5.2.2 Mailbox full")
	if err := send(addr, []string{"bounces@mail.sluice.test"}, strings.NewReader(small)); err != nil {
		t.Fatal(err)
	}
	err = send(addr, []string{"bounces@mail.sluice.test"}, strings.NewReader(small))
	if !errors.As(err, &se) || se.Code != 450 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("third message: %v, want 450 4.7.0", err)
	}
	if n := len(col.all()); n != 1 {
		t.Errorf("%d reports, want 1", n)
	}
}

// TestFlood pipelines 10,000 garbage messages over 4 connections with a
// good DSN every 100th, and checks every good one arrives classified.
func TestFlood(t *testing.T) {
	const conns, perConn, every = 4, 2500, 100
	col := &collector{}
	addr := start(t, Config{Rate: 1e9, Burst: 1 << 30}, col.handle)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- flood(addr, c, perConn, every)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	reps := col.all()
	want := conns * perConn / every
	if len(reps) != want {
		t.Fatalf("%d good reports arrived, want %d", len(reps), want)
	}
	seen := map[string]bool{}
	for _, r := range reps {
		if len(r.Recipients) != 1 || r.Recipients[0].Kind != feedback.Hard || r.JobID == "" {
			t.Fatalf("report %+v", r)
		}
		seen[r.JobID] = true
	}
	if len(seen) != want {
		t.Errorf("%d distinct jobs, want %d", len(seen), want)
	}
	t.Logf("%d messages over %d connections in %v", conns*perConn, conns, time.Since(start).Round(time.Millisecond))
}

// flood writes n transactions on one connection without waiting for
// replies (a reader counts them), every every-th one a real DSN.
func flood(addr string, c, n, every int) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	tp := textproto.NewReader(bufio.NewReader(conn))
	if _, _, err := tp.ReadResponse(220); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		// EHLO, then MAIL, RCPT, DATA, final dot per message.
		for i := 0; i < 1+4*n; i++ {
			if _, _, err := tp.ReadResponse(0); err != nil {
				done <- fmt.Errorf("reply %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	w := bufio.NewWriterSize(conn, 64<<10)
	fmt.Fprintf(w, "EHLO flood%d.test\r\n", c)
	for i := range n {
		rcpt := "bounces@mail.sluice.test"
		body := fmt.Sprintf("Subject: buy now %d\r\n\r\ngarbage %d %s\r\n", i, i, strings.Repeat("spam ", 20))
		if i%every == 0 {
			rcpt, _ = verp.Encode("bounces@mail.sluice.test", fmt.Sprintf("job-%d-%d", c, i))
			body = dsn(rcpt, fmt.Sprintf("u%d-%d@example.test", c, i), "5.1.1", "550 5.1.1 User unknown")
		}
		fmt.Fprintf(w, "MAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\n%s.\r\n", rcpt, body)
	}
	fmt.Fprintf(w, "QUIT\r\n")
	if err := w.Flush(); err != nil {
		return err
	}
	return <-done
}
