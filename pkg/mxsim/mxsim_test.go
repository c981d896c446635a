package mxsim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// send delivers one message over real SMTP with sluice's own client.
func send(t *testing.T, c *deliver.SMTP, s *Server, to string) outcome.Outcome {
	t.Helper()
	d := deliver.Destination{Domain: "sim.test", Hosts: []deliver.Host{{Name: "127.0.0.1", Port: s.Port()}}}
	msg := fmt.Sprintf("From: a@sluice.test\r\nTo: %s\r\nSubject: t\r\n\r\nhello\r\n", to)
	return c.Send(context.Background(), d, deliver.Envelope{From: "a@sluice.test", To: to}, []byte(msg))
}

func client(t *testing.T) *deliver.SMTP {
	c := deliver.NewSMTP(deliver.SMTPConfig{Hostname: "out.sluice.test", ConnectTimeout: time.Second,
		CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})
	t.Cleanup(c.Close)
	return c
}

func TestOverRateGetsTheScriptedProviderReply(t *testing.T) {
	s := start(t, Config{Rate: 5, Burst: 2})
	c := client(t)
	t0 := time.Now()
	var ok, deferred int
	for i := range 10 {
		out := send(t, c, s, fmt.Sprintf("u%d@sim.test", i))
		switch {
		case out.Status == outcome.Delivered:
			ok++
		case out.Code == 451 && out.Enhanced == "4.7.500" && out.Scope == outcome.ScopeProvider:
			deferred++
		default:
			t.Fatalf("attempt %d: %v (scope %s)", i, out, out.Scope)
		}
	}
	// The burst, plus what the rate refilled meanwhile, and no more.
	if most := 2 + int(time.Since(t0).Seconds()*5) + 1; ok < 2 || ok > most {
		t.Fatalf("accepted %d of 10 in %v; want 2..%d", ok, time.Since(t0), most)
	}
	st := s.Stats()
	if st.Accepted != ok || st.Deferred != deferred || ok+deferred != 10 {
		t.Fatalf("stats %+v, client saw %d accepted, %d deferred", st, ok, deferred)
	}
}

func TestSessionsOverTheLimitAreRefusedAtGreeting(t *testing.T) {
	s := start(t, Config{MaxConns: 2, Greeting: ComcastSessions})
	banner := func() (net.Conn, string) {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return c, line
	}
	c1, l1 := banner()
	_, l2 := banner()
	_, l3 := banner()
	if !strings.HasPrefix(l1, "220") || !strings.HasPrefix(l2, "220") || !strings.HasPrefix(l3, "421") ||
		!strings.Contains(l3, "Too many sessions") {
		t.Fatalf("banners %q %q %q; want 220, 220, 421 Too many sessions", l1, l2, l3)
	}
	c1.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, l := banner(); strings.HasPrefix(l, "220") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a freed session slot was not given again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// sluice reads it as a connection-scoped deferral at greeting.
	s2 := start(t, Config{MaxConns: 1, Greeting: ComcastSessions})
	hold, err := net.Dial("tcp", s2.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	_, _ = bufio.NewReader(hold).ReadString('\n')
	out := send(t, client(t), s2, "u@sim.test")
	if out.Status != outcome.Deferred || out.Scope != outcome.ScopeConnection || out.Stage != outcome.StageGreeting {
		t.Fatalf("outcome %v scope %s stage %s", out, out.Scope, out.Stage)
	}
	if st := s2.Stats(); st.Refused != 1 || st.PeakConns != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRateChangesOnSchedule(t *testing.T) {
	s := start(t, Config{Rate: 1, Schedule: []Change{{At: 300 * time.Millisecond, Rate: 1000}}})
	c := client(t)
	if out := send(t, c, s, "a@sim.test"); out.Status != outcome.Delivered {
		t.Fatalf("first: %v", out)
	}
	if out := send(t, c, s, "b@sim.test"); out.Status != outcome.Deferred {
		t.Fatalf("second at 1/s: %v", out)
	}
	time.Sleep(400 * time.Millisecond)
	if s.Rate() != 1000 {
		t.Fatalf("rate %v after the change", s.Rate())
	}
	for i := range 5 {
		if out := send(t, c, s, fmt.Sprintf("c%d@sim.test", i)); out.Status != outcome.Delivered {
			t.Fatalf("after the change: %v", out)
		}
	}
	ev := s.Events()
	if len(ev) != 7 || ev[1].Kind != Deferred || ev[6].At < 300*time.Millisecond {
		t.Fatalf("events %+v", ev)
	}
}

func TestScriptedRecipientReplyAndStages(t *testing.T) {
	s := start(t, Config{Rate: 1, Burst: 1, Stage: "data", OverRate: GmailRateLimited,
		Rcpt: func(to string) *Reply {
			if strings.HasPrefix(to, "busy") {
				return &GmailReceivingTooFast
			}
			return nil
		}})
	c := client(t)
	out := send(t, c, s, "busy@sim.test")
	if out.Code != 450 || out.Enhanced != "4.2.1" || out.Scope != outcome.ScopeRecipient {
		t.Fatalf("scripted: %v scope %s", out, out.Scope)
	}
	if out := send(t, c, s, "a@sim.test"); out.Status != outcome.Delivered {
		t.Fatalf("first: %v", out)
	}
	out = send(t, c, s, "b@sim.test")
	if out.Code != 421 || out.Enhanced != "4.7.28" || out.Stage != outcome.StageData || out.Scope != outcome.ScopeIP {
		t.Fatalf("over the rate at data: %v stage %s scope %s", out, out.Stage, out.Scope)
	}
	if st := s.Stats(); st.Scripted != 1 || st.Accepted != 1 || st.Deferred != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseReply(t *testing.T) {
	r, err := ParseReply("451 4.7.500 Server busy")
	if err != nil || r != (Reply{451, "4.7.500", "Server busy"}) {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseReply("421 RP-001 limits")
	if err != nil || r != (Reply{421, "", "RP-001 limits"}) {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "busy", "250 ok"} {
		if _, err := ParseReply(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := Listen("127.0.0.1:0", Config{Stage: "quit"}); err == nil {
		t.Error("bad stage accepted")
	}
}
