package deliver

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestSendReusesSessionAndUsesSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.SelfSigned(t)})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test", MaxMessagesPerConn: 3})
	defer s.Close()
	d := local(srv)
	for i := 0; i < 7; i++ {
		out := s.Send(context.Background(), d, Envelope{From: "b@sluice.test", To: "a@example.test"},
			[]byte("Subject: hi\r\n\r\nbody\r\n"))
		if out.Status != outcome.Delivered {
			t.Fatalf("message %d: %v", i, out)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 7 {
		t.Fatalf("receiver got %d messages, want 7", len(msgs))
	}
	for _, m := range msgs {
		if !m.TLS || m.Helo != "out.sluice.test" {
			t.Fatalf("message over TLS=%v helo=%q; want TLS with our EHLO name", m.TLS, m.Helo)
		}
		if !strings.HasSuffix(string(m.Data), "body\r\n") {
			t.Fatalf("data %q", m.Data)
		}
	}
	if n := srv.Conns(); n != 3 { // ceil(7/3)
		t.Fatalf("%d sessions, want 3", n)
	}
}

// The per-destination cap (from the throttle) overrides the config, RSET
// separates transactions, and Open counts live sessions until Close.
func TestReuseCapPerDestinationAndOpen(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test", MaxMessagesPerConn: 100})
	d := local(srv)
	d.MaxMessagesPerConn = 4
	send := func(n int) {
		for i := 0; i < n; i++ {
			if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Delivered {
				t.Fatalf("message %d: %v", i, out)
			}
		}
	}
	send(8)
	waitOpen(t, s, d.Hosts[0].Addr(), 0) // both sessions full: retired at once, not left idle
	send(2)
	if n := srv.Conns(); n != 3 { // ceil(10/4)
		t.Fatalf("%d sessions for 10 messages at 4 per session, want 3", n)
	}
	waitOpen(t, s, d.Hosts[0].Addr(), 1) // 4+4 retired (QUIT in the background), the one with 2 idles
	// 10 transactions on 3 sessions: 7 reuses, each opened with RSET.
	if n := strings.Count(string(srv.Wire()), "RSET\r\nMAIL FROM:"); n != 7 {
		t.Fatalf("%d RSET before MAIL on the wire, want 7", n)
	}
	s.Close()
	if n := s.Open(d.Hosts[0].Addr()); n != 0 {
		t.Fatalf("Open after Close = %d, want 0", n)
	}
	if n := strings.Count(string(srv.Wire()), "QUIT\r\n"); n != 3 {
		t.Fatalf("%d QUITs, want 3 (every session ended politely)", n)
	}
}

func TestSTARTTLSFailureFallsBackToPlaintextOnce(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: brokenTLS(), Wire: true})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test", MaxMessagesPerConn: 1})
	defer s.Close()
	for i := 0; i < 2; i++ {
		if out := s.Send(context.Background(), local(srv), testEnv, testMsg); out.Status != outcome.Delivered {
			t.Fatalf("message %d: %v", i, out)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].TLS || msgs[1].TLS {
		t.Fatalf("got %d messages %+v; want 2, each exactly once, in plaintext", len(msgs), msgs)
	}
	// The failed handshake is remembered: the second session does not try.
	if n := strings.Count(string(srv.Wire()), "STARTTLS\r\n"); n != 1 {
		t.Fatalf("STARTTLS sent %d times, want 1", n)
	}
}

func TestRequireTLSNeverSendsPlaintext(t *testing.T) {
	for name, tc := range map[string]struct {
		opts smtptest.Options
		cfg  SMTPConfig
		dest bool
		enh  string
	}{
		"destination, not offered": {smtptest.Options{Wire: true}, SMTPConfig{}, true, "4.7.4"},
		"config, not offered":      {smtptest.Options{Wire: true}, SMTPConfig{RequireTLS: true}, false, "4.7.4"},
		"destination, handshake":   {smtptest.Options{Wire: true, TLS: brokenTLS()}, SMTPConfig{}, true, "4.7.5"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := smtptest.Start(t, tc.opts)
			s := NewSMTP(tc.cfg)
			defer s.Close()
			d := local(srv)
			d.RequireTLS = tc.dest
			out := s.Send(context.Background(), d, testEnv, testMsg)
			if out.Status != outcome.Deferred || out.Scope != outcome.ScopeHost || out.Stage != outcome.StageTLS || out.Enhanced != tc.enh || !strings.Contains(out.Text, "TLS") {
				t.Fatalf("%v scope %s stage %s; want deferred/host at starttls, %s", out, out.Scope, out.Stage, tc.enh)
			}
			if strings.Contains(string(srv.Wire()), "MAIL FROM") || srv.Count() != 0 {
				t.Fatalf("a transaction began without TLS:\n%s", srv.Wire())
			}
		})
	}
}

// After a fallback, the pooled plaintext session must not carry a message
// that requires TLS.
func TestRequireTLSSkipsPooledPlaintextSession(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: brokenTLS()})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	d := local(srv)
	if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	d.RequireTLS = true
	if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Deferred || out.Stage != outcome.StageTLS {
		t.Fatalf("%v stage %s; want deferred at starttls", out, out.Stage)
	}
	if n := srv.Count(); n != 1 {
		t.Fatalf("%d delivered, want only the first (opportunistic) one", n)
	}
	waitOpen(t, s, d.Hosts[0].Addr(), 1) // the plaintext session stays pooled for others
}

func TestGreeting421TriesNextMX(t *testing.T) {
	busy := smtptest.Start(t, smtptest.Options{Greeting: "421 4.7.0 [Too many sessions opened]"})
	good := smtptest.Start(t, smtptest.Options{})
	s := NewSMTP(SMTPConfig{Resolver: mx.Static{}}) // every name is 127.0.0.1
	defer s.Close()
	d := Destination{Domain: "example.test", Hosts: []Host{
		{Name: "mx1.example.test", Port: busy.Port()},
		{Name: "mx2.example.test", Port: good.Port()},
	}}
	out := s.Send(context.Background(), d, testEnv, testMsg)
	if out.Status != outcome.Delivered || out.Host != "mx2.example.test" {
		t.Fatalf("%v via %q; want delivered via mx2", out, out.Host)
	}
	if busy.Conns() != 1 || good.Count() != 1 {
		t.Fatalf("busy saw %d connections, good got %d messages; want 1 and 1", busy.Conns(), good.Count())
	}

	// Busy, then unreachable: the greeting's classification comes back,
	// not the silent host's.
	d.Hosts[1].Port = closedPort(t)
	out = s.Send(context.Background(), d, testEnv, testMsg)
	if out.Status != outcome.Deferred || out.Scope != outcome.ScopeConnection || out.Stage != outcome.StageGreeting || out.Code != 421 {
		t.Fatalf("%v scope %s stage %s; want deferred/connection 421 at greeting", out, out.Scope, out.Stage)
	}
}

func TestConnectionRefusedTriesNextMX(t *testing.T) {
	good := smtptest.Start(t, smtptest.Options{})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	d := Destination{Hosts: []Host{{Name: "127.0.0.1", Port: closedPort(t)}, {Name: "127.0.0.1", Port: good.Port()}}}
	if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Delivered || good.Count() != 1 {
		t.Fatalf("%v, %d delivered; want delivered once via the second host", out, good.Count())
	}
}

// A receiver that stalls after the final dot: the attempt times out with
// its stage, and the session is discarded rather than reused.
func TestStallTimesOutAndDiscardsSession(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Stall: 600 * time.Millisecond})
	s := NewSMTP(SMTPConfig{CommandTimeout: 200 * time.Millisecond, DataTimeout: 200 * time.Millisecond})
	defer s.Close()
	d := local(srv)
	for i := 1; i <= 2; i++ {
		out := s.Send(context.Background(), d, testEnv, testMsg)
		if out.Status != outcome.Deferred || out.Scope != outcome.ScopeHost || out.Stage != outcome.StageData || !strings.Contains(out.Text, "timeout") {
			t.Fatalf("attempt %d: %v scope %s stage %s; want deferred/host timeout at data", i, out, out.Scope, out.Stage)
		}
		if n := s.Open(d.Hosts[0].Addr()); n != 0 {
			t.Fatalf("attempt %d: %d sessions still open after a timeout", i, n)
		}
		if n := srv.Conns(); n != i {
			t.Fatalf("attempt %d on %d sessions; a timed-out session was reused", i, n)
		}
	}
}

// A stall before a command's reply is reported at that command.
func TestRcptStallReportsStage(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(string) error { time.Sleep(600 * time.Millisecond); return nil }})
	s := NewSMTP(SMTPConfig{CommandTimeout: 200 * time.Millisecond})
	defer s.Close()
	out := s.Send(context.Background(), local(srv), testEnv, testMsg)
	if out.Status != outcome.Deferred || out.Stage != outcome.StageRcpt || !strings.Contains(out.Text, "RCPT") {
		t.Fatalf("%v stage %s; want deferred at rcpt", out, out.Stage)
	}
}

// A 421 to RCPT closes the channel: the next message gets a new session.
// A 550 does not: the session carries on after RSET.
func TestBrokenSessionNotReused(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		switch to {
		case "closing@example.test":
			return smtptest.Reply(421, "4.7.0", "closing")
		case "nobody@example.test":
			return smtptest.Reply(550, "5.1.1", "no such user")
		}
		return nil
	}})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	d := local(srv)
	send := func(to string) outcome.Outcome {
		return s.Send(context.Background(), d, Envelope{From: "b@sluice.test", To: to}, testMsg)
	}

	if out := send("nobody@example.test"); out.Status != outcome.Bounced {
		t.Fatalf("nobody: %v", out)
	}
	if out := send("a@example.test"); out.Status != outcome.Delivered || srv.Conns() != 1 {
		t.Fatalf("after a 550: %v on %d sessions; want delivered on the same one", out, srv.Conns())
	}
	if out := send("closing@example.test"); out.Status != outcome.Deferred || out.Code != 421 {
		t.Fatalf("closing: %v", out)
	}
	if out := send("a@example.test"); out.Status != outcome.Delivered || srv.Conns() != 2 {
		t.Fatalf("after a 421: %v on %d sessions; want delivered on a new one", out, srv.Conns())
	}
	if n := srv.Count(); n != 2 {
		t.Fatalf("%d delivered, want 2", n)
	}
}

// With PIPELINING, DATA goes out with MAIL and RCPT before any reply is
// known (RFC 2920), and the next transaction's RSET travels with its MAIL.
// (BDAT, used where CHUNKING is offered too, is chunking_test.go's.)
func TestPipelinesCommandGroup(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true, Rcpt: func(to string) error {
		if to == "nobody@example.test" {
			return smtptest.Reply(550, "5.1.1", "no such user")
		}
		return nil
	}})
	s := NewSMTP(SMTPConfig{DisableChunking: true})
	defer s.Close()
	for _, to := range []string{"nobody@example.test", "a@example.test"} {
		s.Send(context.Background(), local(srv), Envelope{From: "b@sluice.test", To: to}, testMsg)
	}
	if wire := string(srv.Wire()); !strings.Contains(wire, "RCPT TO:<nobody@example.test>\r\nDATA\r\nRSET\r\nMAIL FROM:") {
		t.Fatalf("commands not pipelined:\n%s", wire)
	}
	if srv.Count() != 1 || srv.Conns() != 1 {
		t.Fatalf("%d messages on %d sessions, want 1 on 1", srv.Count(), srv.Conns())
	}
}

// Without pipelining, a refused RCPT ends the transaction there: no DATA
// is sent, and RSET readies the session for the next message.
func TestLockstepStopsAtRefusal(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true, Rcpt: func(to string) error {
		if to == "nobody@example.test" {
			return smtptest.Reply(550, "5.1.1", "no such user")
		}
		return nil
	}})
	s := NewSMTP(SMTPConfig{DisablePipelining: true})
	defer s.Close()
	for _, to := range []string{"nobody@example.test", "a@example.test"} {
		s.Send(context.Background(), local(srv), Envelope{From: "b@sluice.test", To: to}, testMsg)
	}
	wire := string(srv.Wire())
	if !strings.Contains(wire, "RCPT TO:<nobody@example.test>\r\nRSET\r\nMAIL FROM:") || strings.Count(wire, "DATA\r\n") != 1 {
		t.Fatalf("want RCPT, then RSET, and one DATA in all:\n%s", wire)
	}
	if srv.Count() != 1 || srv.Conns() != 1 {
		t.Fatalf("%d messages on %d sessions, want 1 on 1", srv.Count(), srv.Conns())
	}
}

// A pooled session the receiver dropped while idle is detected by its
// RSET and replaced; the message goes exactly once.
func TestStaleIdleSessionReplaced(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{IdleTimeout: 100 * time.Millisecond})
	s := NewSMTP(SMTPConfig{IdleTimeout: time.Minute})
	defer s.Close()
	d := local(srv)
	if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	time.Sleep(300 * time.Millisecond) // the receiver says 421 4.4.2 and hangs up
	if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Delivered {
		t.Fatalf("after the receiver dropped the idle session: %v", out)
	}
	if srv.Count() != 2 || srv.Conns() != 2 {
		t.Fatalf("%d messages on %d sessions; want 2 on 2", srv.Count(), srv.Conns())
	}
}

func TestIdleSessionsClosed(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{IdleTimeout: 50 * time.Millisecond})
	defer s.Close()
	d := local(srv)
	if out := s.Send(context.Background(), d, testEnv, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	if s.Open(d.Hosts[0].Addr()) != 1 {
		t.Fatal("no pooled session after a delivery")
	}
	waitOpen(t, s, d.Hosts[0].Addr(), 0)
	if !strings.HasSuffix(string(srv.Wire()), "QUIT\r\n") {
		t.Fatalf("idle session closed without QUIT:\n%s", srv.Wire())
	}
}

// Concurrent sends open concurrent sessions; only MaxIdlePerHost stay.
func TestMaxIdlePerHost(t *testing.T) {
	const n = 3
	var arrived atomic.Int32
	release := make(chan struct{})
	srv := smtptest.Start(t, smtptest.Options{Data: func(string, []string, []byte) error {
		if arrived.Add(1) == n {
			close(release)
		}
		<-release // hold every session busy until all n are open
		return nil
	}})
	s := NewSMTP(SMTPConfig{MaxIdlePerHost: 1})
	defer s.Close()
	d := local(srv)
	done := make(chan outcome.Outcome)
	for i := 0; i < n; i++ {
		go func() { done <- s.Send(context.Background(), d, testEnv, testMsg) }()
	}
	for i := 0; i < n; i++ {
		if out := <-done; out.Status != outcome.Delivered {
			t.Fatal(out)
		}
	}
	if srv.Conns() != n {
		t.Fatalf("%d sessions, want %d", srv.Conns(), n)
	}
	waitOpen(t, s, d.Hosts[0].Addr(), 1)
}

// waitOpen waits for Open(addr) to settle at want: retired sessions say
// QUIT in the background and count as open until they are gone.
func waitOpen(t *testing.T, s *SMTP, addr string, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for s.Open(addr) != want {
		if time.Now().After(deadline) {
			t.Fatalf("Open(%s) = %d, want %d", addr, s.Open(addr), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSendHonoursContext(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Stall: 3 * time.Second})
	s := NewSMTP(SMTPConfig{}) // RFC timeouts: only the context can end this quickly
	defer s.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if out := s.Send(ctx, local(srv), testEnv, testMsg); out.Status != outcome.Deferred || out.Reason != outcome.Interrupted || srv.Conns() != 0 {
		t.Fatalf("cancelled before: %v reason %q, %d sessions; want canceled and no session", out, out.Reason, srv.Conns())
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	out := s.Send(ctx, local(srv), testEnv, testMsg)
	if out.Status != outcome.Deferred || out.Reason != outcome.Interrupted || out.Stage != outcome.StageData {
		t.Fatalf("cancelled during DATA: %v reason %q stage %s; want canceled at data", out, out.Reason, out.Stage)
	}
	if n := s.Open(local(srv).Hosts[0].Addr()); n != 0 {
		t.Fatalf("%d sessions open after cancellation", n)
	}
}
