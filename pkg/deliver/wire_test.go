package deliver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// Dot-stuffing and line ends, checked on the receiver and on the wire: a
// line starting with "." arrives intact, a lone "." line does not end the
// message early, and no bare CR or LF is ever sent.
func TestWireDotStuffingAndLineEnds(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test", DisableChunking: true})
	defer s.Close()
	msg := ".first\nSubject: x\n\n.hidden\n..two\nbare\rcr\r\n.\nend" // bare LF, bare CR, no final newline
	want := ".first\r\nSubject: x\r\n\r\n.hidden\r\n..two\r\nbare\r\ncr\r\n.\r\nend\r\n"
	if out := s.Send(context.Background(), local(srv), testEnv, []byte(msg)); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || string(msgs[0].Data) != want {
		t.Fatalf("received %q, want %q", msgs[0].Data, want)
	}
	wire := srv.Wire()
	if !bytes.Contains(wire, []byte("DATA\r\n..first\r\n")) || !bytes.Contains(wire, []byte("\r\n..hidden\r\n...two\r\n")) ||
		!bytes.Contains(wire, []byte("\r\n..\r\nend\r\n.\r\n")) {
		t.Fatalf("not dot-stuffed on the wire:\n%q", wire)
	}
	for i, b := range wire {
		if b == '\n' && (i == 0 || wire[i-1] != '\r') || b == '\r' && (i+1 == len(wire) || wire[i+1] != '\n') {
			t.Fatalf("bare CR or LF at byte %d: %q", i, wire[max(0, i-20):min(len(wire), i+20)])
		}
	}
}

func TestSizeRefusedBeforeMail(t *testing.T) {
	var mails atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{MaxMessageBytes: 1000, Wire: true,
		Mail: func(string) error { mails.Add(1); return nil }})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 120)...)
	out := s.Send(context.Background(), local(srv), testEnv, big)
	if out.Status != outcome.Failed || out.Scope != outcome.ScopeMessage || out.Enhanced != "5.3.4" {
		t.Fatalf("%v scope %s; want failed/message 5.3.4", out, out.Scope)
	}
	if mails.Load() != 0 || bytes.Contains(srv.Wire(), []byte("DATA")) {
		t.Fatalf("a transaction began for an oversized message:\n%s", srv.Wire())
	}
	// The session is still good, and SIZE= announces a message that fits.
	if out := s.Send(context.Background(), local(srv), testEnv, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	m := srv.Messages()
	if srv.Conns() != 1 || len(m) != 1 || m[0].Size != int64(len(testMsg)) {
		t.Fatalf("%d sessions, messages %+v; want one on the same session with SIZE=%d", srv.Conns(), m, len(testMsg))
	}
}

func TestSMTPUTF8(t *testing.T) {
	env := Envelope{From: "b@sluice.test", To: "jürgen@example.test"}
	plain := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	out := s.Send(context.Background(), local(plain), env, testMsg)
	if out.Status != outcome.Failed || out.Enhanced != "5.6.7" || plain.Count() != 0 || bytes.Contains(plain.Wire(), []byte("MAIL")) {
		t.Fatalf("%v; want failed 5.6.7 and no MAIL", out)
	}
	utf8 := smtptest.Start(t, smtptest.Options{SMTPUTF8: true})
	if out := s.Send(context.Background(), local(utf8), env, testMsg); out.Status != outcome.Delivered {
		t.Fatal(out)
	}
	if m := utf8.Messages(); len(m) != 1 || !m[0].UTF8 || m[0].To[0] != env.To {
		t.Fatalf("%+v; want one message sent with SMTPUTF8 to %s", m, env.To)
	}
}

func TestEightBitMIMEOnlyWhenNeeded(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	for _, body := range []string{"plain ascii\r\n", "caf\xc3\xa9\r\n"} {
		if out := s.Send(context.Background(), local(srv), testEnv, []byte("Subject: x\r\n\r\n"+body)); out.Status != outcome.Delivered {
			t.Fatal(out)
		}
	}
	m := srv.Messages()
	if len(m) != 2 || m[0].Body != "" || m[1].Body != "8BITMIME" {
		t.Fatalf("BODY= %q then %q; want none for ASCII, 8BITMIME for 8-bit", m[0].Body, m[1].Body)
	}
}

func TestBadEnvelopeNeverSent(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	s := NewSMTP(SMTPConfig{})
	defer s.Close()
	for _, env := range []Envelope{
		{From: "b@sluice.test", To: "a@example.test>\r\nRCPT TO:<victim@example.test"},
		{From: "b@sluice.test\r\nRSET", To: "a@example.test"},
		{From: "b@sluice.test", To: ""},
	} {
		if out := s.Send(context.Background(), local(srv), env, testMsg); out.Status == outcome.Delivered || out.Stage != outcome.StageBuild {
			t.Fatalf("%q: %v stage %s; want refused before SMTP", env, out, out.Stage)
		}
	}
	if srv.Conns() != 0 {
		t.Fatalf("%d sessions opened for invalid envelopes", srv.Conns())
	}
}

// BenchmarkSend measures messages per second over reused sessions to a
// local receiver, 2 KB each: one sender on one session, and eight senders
// sharing the pool.
func BenchmarkSend(b *testing.B) {
	msg := []byte("From: b@sluice.test\r\nTo: a@example.test\r\nSubject: bench\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 62)+"\r\n", 31))
	for _, par := range []int{1, 8} {
		b.Run("senders="+strconv.Itoa(par), func(b *testing.B) {
			srv := smtptest.Start(b, smtptest.Options{Discard: true})
			s := NewSMTP(SMTPConfig{MaxMessagesPerConn: 1000})
			defer s.Close()
			d := local(srv)
			b.SetBytes(int64(len(msg)))
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if out := s.Send(context.Background(), d, testEnv, msg); out.Status != outcome.Delivered {
							b.Error(out)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if srv.Count() != b.N {
				b.Fatalf("receiver counted %d, want %d", srv.Count(), b.N)
			}
		})
	}
}

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

// TestSendPartsAsOneMessage: pieces go on the wire exactly as the joined
// message would, with dot-stuffing where a line starts in a new piece and
// CRLFs that straddle two pieces; pieces that are not canonical together
// are canonicalised as Send does.
func TestSendPartsAsOneMessage(t *testing.T) {
	for _, chunking := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunking=%v", chunking), func(t *testing.T) { testSendParts(t, chunking) })
	}
}

func testSendParts(t *testing.T, chunking bool) {
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test", DisableChunking: !chunking})
	defer s.Close()
	for _, parts := range [][]string{
		{"Subject: x\r\n\r\n", ".starts a piece\r\n", "mid", "dle\r", "\n.after a straddling CRLF\r\n", "..", "\r\n"},
		{".first\r\nSubject: y\r\n", "\r\n", "body\r\n.", "\r\nend\r\n"},
		{"Subject: z\n\n", ".bare LF\n", "x"}, // not canonical: joined, then made CRLF
	} {
		joined := []byte(strings.Join(parts, ""))
		var bs [][]byte
		for _, p := range parts {
			bs = append(bs, []byte(p))
		}
		n0 := len(srv.Wire())
		if out := s.SendParts(context.Background(), local(srv), testEnv, bs); out.Status != outcome.Delivered {
			t.Fatal(out)
		}
		n1 := len(srv.Wire())
		if out := s.Send(context.Background(), local(srv), testEnv, joined); out.Status != outcome.Delivered {
			t.Fatal(out)
		}
		wire := srv.Wire()
		msgs := srv.Messages()
		got, want := msgs[len(msgs)-2].Data, msgs[len(msgs)-1].Data
		if !bytes.Equal(got, want) {
			t.Fatalf("pieces %q arrived as %q; joined: %q", parts, got, want)
		}
		if a, b := dataOf(wire[n0:n1]), dataOf(wire[n1:]); len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("pieces %q on the wire:\n%q\njoined:\n%q", parts, a, b)
		}
	}
}

// dataOf is what a transaction's client bytes carry after DATA or BDAT.
func dataOf(wire []byte) []byte {
	if _, after, ok := bytes.Cut(wire, []byte("DATA\r\n")); ok {
		return after
	}
	_, after, _ := bytes.Cut(wire, []byte(" LAST\r\n"))
	return after
}

// BenchmarkPrepareAndWrite is the client's own work per message, without
// a receiver: checking the pieces (CRLF, 8-bit, header) and writing them
// dot-stuffed to a buffered writer. 100 KiB in one slice, and as the
// pieces a composed message would be (own header, a shared body).
func BenchmarkPrepareAndWrite(b *testing.B) {
	head := []byte("From: b@sluice.test\r\nTo: a@example.test\r\nSubject: bench\r\n\r\n")
	body := append(bytes.Repeat([]byte(strings.Repeat("x", 73)+"=C3=A9\r\n"), 1400), ".dot\r\n"...)
	for _, bc := range []struct {
		name  string
		parts [][]byte
	}{
		{"100KiB-one", [][]byte{append(append([]byte{}, head...), body...)}},
		{"100KiB-pieces", [][]byte{head, body[:len(body)/2], body[len(body)/2:]}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := bufio.NewWriterSize(io.Discard, 32<<10)
			b.SetBytes(int64(dataSize(bc.parts)))
			b.ReportAllocs()
			for b.Loop() {
				p, out, ok := prepare(testEnv, bc.parts)
				if !ok {
					b.Fatal(out)
				}
				if err := writeData(w, p.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
