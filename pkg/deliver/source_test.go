package deliver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// Messages sent from a source leave from its address and say its EHLO
// name, verified by the receiver's peer address; sessions are pooled per
// (source, host), so a session of one source never carries another's.
func TestSourcesBindAddressAndEHLO(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := NewSMTP(SMTPConfig{Hostname: "default.sluice.test"})
	defer s.Close()
	a := Source{Name: "a", Address: "127.0.0.2", EHLO: "a.sluice.test"}
	b := Source{Name: "b", Address: "127.0.0.3", EHLO: "b.sluice.test"}
	order := []Source{a, b, a, b, {}, a, b}
	for i, src := range order {
		d := local(srv)
		d.Source = src
		env := Envelope{From: "bounce@sluice.test", To: fmt.Sprintf("u%d@example.test", i)}
		if out := s.Send(context.Background(), d, env, testMsg); out.Status != outcome.Delivered || out.Source != src.Name {
			t.Fatalf("send %d from %q: %v (source %q)", i, src.Name, out, out.Source)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != len(order) {
		t.Fatalf("%d messages, want %d", len(msgs), len(order))
	}
	conns := map[int]string{} // receiver's session number → source
	for i, m := range msgs {
		src := order[i]
		ip, _, _ := net.SplitHostPort(m.Peer)
		wantIP, wantHelo := src.Address, src.EHLO
		if src.Name == "" {
			wantIP, wantHelo = "127.0.0.1", "default.sluice.test"
		}
		if ip != wantIP || m.Helo != wantHelo {
			t.Errorf("message %d (source %q) came from %s saying %q; want %s saying %q", i, src.Name, m.Peer, m.Helo, wantIP, wantHelo)
		}
		if prev, ok := conns[m.Conn]; ok && prev != src.Name {
			t.Errorf("session %d carried mail of source %q and of %q", m.Conn, prev, src.Name)
		}
		conns[m.Conn] = src.Name
	}
	// a and b each kept one pooled session, plus the default route's.
	if srv.Conns() != 3 {
		t.Errorf("%d sessions, want 3 (one per source, reused)", srv.Conns())
	}
	host := local(srv).Hosts[0].Addr()
	if s.OpenFrom(a, host) != 1 || s.OpenFrom(b, host) != 1 || s.Open(host) != 3 {
		t.Errorf("open: a %d, b %d, all %d; want 1, 1, 3", s.OpenFrom(a, host), s.OpenFrom(b, host), s.Open(host))
	}
}

// A source whose address is not this host's fails CheckSources with an
// error naming it; nothing is sent anywhere (the address is only bound
// locally). 192.0.2.1 is TEST-NET-1, never configured here.
func TestCheckSources(t *testing.T) {
	if err := CheckSources([]Source{{Name: "default"}, {Name: "a", Address: "127.0.0.2"}, {Name: "b", Address: "127.0.0.3", EHLO: "b.sluice.test"}}); err != nil {
		t.Fatalf("loopback sources: %v", err)
	}
	err := CheckSources([]Source{{Name: "a", Address: "127.0.0.2"}, {Name: "far", Address: "192.0.2.1"}, {Name: "typo", Address: "127.0.0.300"}})
	if err == nil {
		t.Fatal("CheckSources accepted 192.0.2.1")
	}
	msg := err.Error()
	for _, want := range []string{`source "far": cannot bind address 192.0.2.1`, `source "typo": "127.0.0.300" is not an IP address`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, `source "a"`) {
		t.Errorf("error %q names the good source", msg)
	}
}

// A send from an unbindable source fails at connect as our own problem,
// never reaching the receiver.
func TestSendFromUnbindableSource(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	d := local(srv)
	d.Source = Source{Name: "far", Address: "192.0.2.1"}
	out := NewSMTP(SMTPConfig{}).Send(context.Background(), d, testEnv, testMsg)
	if out.Status != outcome.Deferred || out.Stage != outcome.StageConnect || !strings.Contains(out.Text, "from source far (192.0.2.1)") || out.Source != "far" {
		t.Fatalf("%v stage %s source %q", out, out.Stage, out.Source)
	}
	if srv.Conns() != 0 {
		t.Fatalf("receiver saw %d sessions", srv.Conns())
	}
}
