package deliver

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestSendReusesSessionAndUsesSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.SelfSigned(t)})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test", MaxMessagesPerConn: 3})
	defer s.Close()
	d := Destination{Domain: "example.test", Hosts: []Host{{Name: "127.0.0.1", Port: srv.Port()}}}
	for i := 0; i < 7; i++ {
		out := s.Send(context.Background(), d, Envelope{From: "b@sluice.test", To: "a@example.test"},
			[]byte("Subject: hi\r\n\r\nbody\r\n"))
		if out.Status != Delivered {
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
