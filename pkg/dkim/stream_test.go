package dkim_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// timestamps finds the t= tags of a message's two signatures.
var timestamps = regexp.MustCompile(`(?s)\st=\d+;.*\st=\d+;`)

// TestStreamedMessagesVerify takes composed messages the streaming way —
// message.Compose's pieces, SignParts over them, SendParts to a real SMTP
// receiver, nothing joined — and checks what arrives: the same bytes as
// Render followed by Sign, and signatures go-msgauth and dkimpy accept,
// with each RSA backend built in.
func TestStreamedMessagesVerify(t *testing.T) {
	tmpl, err := message.Compile(message.Parts{
		From:    `"Sluice News" <news@sluice.test>`,
		Subject: "Grüezi {{.first_name}}",
		Headers: map[string]string{"X-City": "{{.city}}"},
		Text: "Hello {{.first_name}} from {{.city}}!\n" +
			strings.Repeat("A static line, long enough that quoted-printable breaks it past column seventy-six: café, naïve.\n.dotted\n", 200) +
			"Bye {{.first_name}}.\n",
		HTML: "<p>Hello <b>{{.first_name}}</b></p>\n" + strings.Repeat("<tr><td><a href=\"https://shop.sluice.test/p?a=1\">crème</a></td></tr>\n", 300),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) {
			t.Setenv(dkim.BackendEnv, b)
			s, srv := setup(t)
			rcv := smtptest.Start(t, smtptest.Options{})
			sender := deliver.NewSMTP(deliver.SMTPConfig{Hostname: "out.sluice.test",
				ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})
			t.Cleanup(sender.Close)
			dest := deliver.Destination{Domain: "rcpt.test", Hosts: []deliver.Host{{Name: "127.0.0.1", Port: rcv.Port()}}}
			const n = 4
			var want [][]byte
			for i := range n {
				to := fmt.Sprintf("reader%d@rcpt.test", i)
				fields := map[string]string{"first_name": fmt.Sprintf("Zoë %d", i), "city": "Zürich"}
				x := message.Extra{MessageID: fmt.Sprintf("<m%d@sluice.test>", i), Date: time.Now()}
				m, err := tmpl.Compose(to, fields, x)
				if err != nil {
					t.Fatal(err)
				}
				sig, err := s.SignParts("sluice.test", m.Parts())
				if err != nil {
					t.Fatal(err)
				}
				parts := append([][]byte{sig}, m.Parts()...)
				out := sender.SendParts(context.Background(), dest, deliver.Envelope{From: "bounce@sluice.test", To: to}, parts)
				if out.Status != outcome.Delivered {
					t.Fatalf("send: %v", out)
				}
				rendered, err := tmpl.Render(to, fields, x)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.Bytes(), rendered) {
					t.Fatal("Compose and Render differ")
				}
				if signed, err := s.Sign("sluice.test", rendered); err != nil {
					t.Fatal(err)
				} else if bytes.Equal(timestamps.Find(signed), timestamps.Find(sig)) && !bytes.Equal(signed, append(sig, rendered...)) {
					t.Fatalf("SignParts and Sign disagree on the same message:\n%s\n%s", signed[:len(sig)], sig)
				}
				want = append(want, append(sig, rendered...))
				m.Release()
			}
			msgs := rcv.Messages()
			if len(msgs) != n {
				t.Fatalf("%d messages received, want %d", len(msgs), n)
			}
			for i, got := range msgs {
				if !bytes.Equal(got.Data, want[i]) {
					t.Fatalf("message %d: received bytes differ from the signed pieces", i)
				}
				vs := verify(t, srv, got.Data)
				if len(vs) != 2 || vs[0].Err != nil || vs[1].Err != nil {
					t.Fatalf("go-msgauth: %d verifications, errors %v / %v", len(vs), vs[0].Err, vs[len(vs)-1].Err)
				}
				if pass, report := dkimpy(t, srv, got.Data, 2); pass != 2 {
					t.Fatalf("dkimpy passed %d of 2 signatures:\n%s", pass, report)
				}
			}
			tampered := bytes.Replace(msgs[0].Data, []byte("Bye Zo"), []byte("Bye Zu"), 1)
			if vs := verify(t, srv, tampered); vs[0].Err == nil {
				t.Fatal("a changed body still verifies")
			}
		})
	}
}

// TestSignPartsRefusesBareLF: pieces are hashed as they are sent, so ones
// that are not CRLF-canonical are refused rather than signed.
func TestSignPartsRefusesBareLF(t *testing.T) {
	s, _ := setup(t)
	head, body, _ := strings.Cut(campaign, "\r\n\r\n")
	if _, err := s.SignParts("sluice.test", [][]byte{[]byte(head + "\r\n\r\n"), []byte(strings.ReplaceAll(body, "\r\n", "\n"))}); err == nil {
		t.Fatal("bare LF pieces were signed")
	}
	sig, err := s.SignParts("sluice.test", [][]byte{[]byte(head + "\r\n"), []byte("\r\n" + body)}) // the header ends across pieces
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(sig, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	if none, err := s.SignParts("other.test", [][]byte{[]byte(campaign)}); none != nil || err != nil {
		t.Fatalf("domain without a key: %q, %v", none, err)
	}
}
