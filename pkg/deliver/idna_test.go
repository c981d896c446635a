package deliver

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// TestIDNADomainNeedsNoSMTPUTF8: a recipient (and sender) whose local
// part is ASCII and whose domain is not goes out with the A-label domain,
// without SMTPUTF8, to a receiver that does not offer it.
func TestIDNADomainNeedsNoSMTPUTF8(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	env := Envelope{From: "news@bücher.example", To: "mueller@bücher.example"}
	if out := s.Send(context.Background(), local(srv), env, testMsg); out.Status != outcome.Delivered {
		t.Fatalf("%v; want delivered without SMTPUTF8", out)
	}
	wire := srv.Wire()
	for _, want := range []string{"MAIL FROM:<news@xn--bcher-kva.example>", "RCPT TO:<mueller@xn--bcher-kva.example>\r\n"} {
		if !bytes.Contains(wire, []byte(want)) {
			t.Errorf("wire lacks %q:\n%s", want, wire)
		}
	}
	if bytes.Contains(wire, []byte("SMTPUTF8")) || bytes.Contains(wire, []byte("ü")) {
		t.Errorf("non-ASCII or SMTPUTF8 on the wire:\n%s", wire)
	}

	// A non-ASCII local part has no ASCII form: it still needs SMTPUTF8.
	out := s.Send(context.Background(), local(srv), Envelope{From: "b@sluice.test", To: "müller@bücher.example"}, testMsg)
	if out.Status != outcome.Failed || out.Enhanced != "5.6.7" {
		t.Fatalf("%v; want failed 5.6.7 (needs SMTPUTF8)", out)
	}
	utf8 := smtptest.Start(t, smtptest.Options{SMTPUTF8: true, Wire: true})
	if out := s.Send(context.Background(), local(utf8), Envelope{From: "b@sluice.test", To: "müller@bücher.example"}, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	if !bytes.Contains(utf8.Wire(), []byte("RCPT TO:<müller@bücher.example>")) {
		t.Errorf("wire:\n%s", utf8.Wire())
	}
}
