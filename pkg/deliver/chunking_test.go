package deliver

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// Where CHUNKING and PIPELINING are offered (go-smtp offers both), the
// message goes in the same write as its commands, after "BDAT size LAST",
// as it is: no dot-stuffing, no final dot; the receiver gets the same
// bytes DATA would have given it.
func TestChunkingWire(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test"})
	defer s.Close()
	msg := []byte("Subject: x\r\n\r\n.dot at a line start\r\nbody\r\n.\r\nend\r\n")
	for range 2 {
		if out := s.Send(context.Background(), local(srv), testEnv, msg); out.Status != outcome.Delivered || out.Stage != outcome.StageData {
			t.Fatalf("%v stage %s", out, out.Stage)
		}
	}
	n := strconv.Itoa(len(msg))
	want := "MAIL FROM:<b@sluice.test> SIZE=" + n + "\r\nRCPT TO:<a@example.test>\r\nBDAT " + n + " LAST\r\n" + string(msg)
	wire := string(srv.Wire())
	if !strings.Contains(wire, want) || !strings.Contains(wire, "RSET\r\n"+want) || strings.Contains(wire, "DATA\r\n") {
		t.Fatalf("want MAIL, RCPT, BDAT and the message as it is in one go, RSET in front the second time:\n%q", wire)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || !bytes.Equal(msgs[0].Data, msg) || !bytes.Equal(msgs[1].Data, msg) || srv.Conns() != 1 {
		t.Fatalf("%d messages on %d sessions", len(msgs), srv.Conns())
	}
}

// A refused RCPT is the outcome; the chunk sent behind it is consumed and
// dropped by the receiver, and the session goes on in step.
func TestChunkingRefusedRecipient(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true, Rcpt: func(to string) error {
		if to == "nobody@example.test" {
			return smtptest.Reply(550, "5.1.1", "no such user")
		}
		return nil
	}})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	out := s.Send(context.Background(), local(srv), Envelope{From: "b@sluice.test", To: "nobody@example.test"}, testMsg)
	if out.Status != outcome.Bounced || out.Code != 550 || out.Stage != outcome.StageRcpt {
		t.Fatalf("%v stage %s; want bounced 550 at rcpt", out, out.Stage)
	}
	if out := s.Send(context.Background(), local(srv), testEnv, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	if srv.Count() != 1 || srv.Conns() != 1 || !bytes.Equal(srv.Messages()[0].Data, testMsg) {
		t.Fatalf("%d messages on %d sessions; want 1 on 1", srv.Count(), srv.Conns())
	}
}

// The receiver's verdict on the message comes as the answer to BDAT:
// a refusal there is the message's, a stall there is the data timeout.
func TestChunkingVerdicts(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Data: func(_ string, _ []string, data []byte) error {
		if bytes.Contains(data, []byte("spam")) {
			return smtptest.Reply(554, "5.7.1", "rejected as spam")
		}
		return nil
	}})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	out := s.Send(context.Background(), local(srv), testEnv, []byte("Subject: spam\r\n\r\nspam\r\n"))
	if out.Status == outcome.Delivered || out.Code != 554 || out.Stage != outcome.StageData {
		t.Fatalf("%v stage %s; want refused with 554 at data", out, out.Stage)
	}
	if out := s.Send(context.Background(), local(srv), testEnv, testMsg); out.Status != outcome.Delivered || srv.Conns() != 1 {
		t.Fatalf("%v on %d sessions", out, srv.Conns())
	}

	slow := smtptest.Start(t, smtptest.Options{Stall: time.Second, Quiet: true})
	s2 := NewSMTP(SMTPConfig{DataTimeout: 100 * time.Millisecond})
	defer s2.Close()
	out = s2.Send(context.Background(), local(slow), testEnv, testMsg)
	if out.Status != outcome.Deferred || out.Stage != outcome.StageData || !strings.Contains(out.Text, "may have been delivered") {
		t.Fatalf("%v stage %s; want deferred at data, maybe delivered", out, out.Stage)
	}
}
