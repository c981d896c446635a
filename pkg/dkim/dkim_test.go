package dkim_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

const campaign = "From: Sluice News <news@sluice.test>\r\n" +
	"To: reader@rcpt.test\r\n" +
	"Subject: Weekly digest\r\n" +
	"Date: Fri, 02 Jan 2026 10:00:00 +0000\r\n" +
	"Message-ID: <c42.r7@sluice.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"List-Unsubscribe: <https://sluice.test/u/r7>, <mailto:unsub@sluice.test?subject=r7>\r\n" +
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
	"Content-Type: multipart/alternative; boundary=\"b1\"\r\n" +
	"X-Campaign: 42\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello,\r\n" +
	".a line that SMTP must dot-stuff\r\n" +
	"--b1\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>Hello,</p>\r\n" +
	"--b1--\r\n"

// keys are generated once per test binary: RSA-2048 is slow to make.
var keys = sync.OnceValues(func() ([3][]byte, error) {
	rsaPEM, _, err := dkim.GenerateRSA(2048)
	if err != nil {
		return [3][]byte{}, err
	}
	edPEM, _, err := dkim.GenerateEd25519()
	if err != nil {
		return [3][]byte{}, err
	}
	// The same RSA key in PKCS#1 form.
	k, err := dkim.ParseKey(rsaPEM)
	if err != nil {
		return [3][]byte{}, err
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))})
	return [3][]byte{rsaPEM, edPEM, pkcs1}, nil
})

func write(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// setup returns a signer for sluice.test with an RSA (selector "rsa") and
// an Ed25519 (selector "ed") key, and a DNS server publishing both.
func setup(t testing.TB) (*dkim.Signer, *dnstest.Server) {
	t.Helper()
	k, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dkim.NewSigner([]config.DKIM{
		{Domain: "sluice.test", Selector: "rsa", KeyFile: write(t, "rsa.pem", k[0])},
		{Domain: "Sluice.Test.", Selector: "ed", KeyFile: write(t, "ed.pem", k[1])},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t)
	for sel, pemKey := range map[string][]byte{"rsa": k[0], "ed": k[1]} {
		key, err := dkim.ParseKey(pemKey)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := dkim.PublicRecord(key)
		if err != nil {
			t.Fatal(err)
		}
		srv.Add(dnstest.TXT(sel+"._domainkey.sluice.test", 300, rec))
	}
	return s, srv
}

func verify(t *testing.T, srv *dnstest.Server, msg []byte) []*msgauth.Verification {
	t.Helper()
	v, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{LookupTXT: srv.LookupTXT})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// algorithms returns the a= tag of each DKIM-Signature, in order.
func algorithms(msg []byte) []string {
	var out []string
	for _, part := range strings.Split(string(msg), "DKIM-Signature:")[1:] {
		_, rest, _ := strings.Cut(part, " a=")
		alg, _, _ := strings.Cut(rest, ";")
		out = append(out, alg)
	}
	return out
}

func TestSignVerifies(t *testing.T) {
	s, srv := setup(t)
	signed, err := s.Sign("SLUICE.test", []byte(campaign))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(signed, []byte(campaign)) || !bytes.HasPrefix(signed, []byte("DKIM-Signature: ")) {
		t.Fatalf("signed message is not the original with signatures prepended:\n%s", signed)
	}
	if got := strings.Join(algorithms(signed), ","); got != "rsa-sha256,ed25519-sha256" {
		t.Fatalf("algorithms %s", got)
	}
	if !bytes.Contains(signed, []byte("c=relaxed/relaxed")) {
		t.Fatal("not relaxed/relaxed")
	}
	vs := verify(t, srv, signed)
	if len(vs) != 2 {
		t.Fatalf("%d verifications, want 2", len(vs))
	}
	const wantH = "From:To:Subject:Date:Message-ID:MIME-Version:Content-Type:List-Unsubscribe:List-Unsubscribe-Post:From"
	for _, v := range vs {
		if v.Err != nil || v.Domain != "sluice.test" {
			t.Fatalf("verification: domain %s err %v", v.Domain, v.Err)
		}
		if got := strings.Join(v.HeaderKeys, ":"); got != wantH {
			t.Fatalf("h=%s\nwant %s", got, wantH)
		}
	}
	for _, sel := range []string{"rsa", "ed"} {
		if n := srv.Queries(sel+"._domainkey.sluice.test", dns.TypeTXT); n != 1 {
			t.Fatalf("%s key queried %d times, want 1", sel, n)
		}
	}
	// Relaxed canonicalisation tolerates re-folding and extra spaces.
	refolded := bytes.Replace(signed, []byte("Subject: Weekly digest"), []byte("Subject:   Weekly\r\n\tdigest"), 1)
	for _, v := range verify(t, srv, refolded) {
		if v.Err != nil {
			t.Fatalf("re-folded Subject: %v", v.Err)
		}
	}
}

func TestTamperingFails(t *testing.T) {
	s, srv := setup(t)
	signed, err := s.Sign("sluice.test", []byte(campaign))
	if err != nil {
		t.Fatal(err)
	}
	for name, tampered := range map[string][]byte{
		"body":             bytes.Replace(signed, []byte("<p>Hello,</p>"), []byte("<p>Hullo,</p>"), 1),
		"list-unsubscribe": bytes.Replace(signed, []byte("https://sluice.test/u/r7"), []byte("https://evil.test/u/r7"), 1),
		"second from":      append([]byte("From: ceo@evil.test\r\n"), signed...),
		"unsigned changed": bytes.Replace(signed, []byte("X-Campaign: 42\r\n"), []byte("X-Campaign: 43\r\n"), 1),
	} {
		vs := verify(t, srv, tampered)
		for _, v := range vs {
			if name == "unsigned changed" {
				// X-Campaign is not signed: changing it must not break the
				// signature (the control case of this table).
				if v.Err != nil {
					t.Fatalf("%s: unsigned header change broke the signature: %v", name, v.Err)
				}
				continue
			}
			if v.Err == nil {
				t.Fatalf("%s: tampered message verified", name)
			}
		}
	}
}

func TestVerifiesAfterSMTP(t *testing.T) {
	s, srv := setup(t)
	// Bare LF input: signing normalises to CRLF, which is what SMTP carries.
	lf := []byte(strings.ReplaceAll(campaign, "\r\n", "\n"))
	signed, err := s.Sign("sluice.test", lf)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(signed, []byte("\n")) != bytes.Count(signed, []byte("\r\n")) {
		t.Fatal("bare LF left in the signed message")
	}
	rcv := smtptest.Start(t, smtptest.Options{})
	sender := deliver.NewSMTP(deliver.SMTPConfig{Hostname: "out.sluice.test",
		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})
	t.Cleanup(sender.Close)
	dest := deliver.Destination{Domain: "rcpt.test", Hosts: []deliver.Host{{Name: "127.0.0.1", Port: rcv.Port()}}}
	out := sender.Send(context.Background(), dest, deliver.Envelope{From: "bounce@sluice.test", To: "reader@rcpt.test"}, signed)
	if out.Status != outcome.Delivered {
		t.Fatalf("send: %v", out)
	}
	msgs := rcv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received", len(msgs))
	}
	if !bytes.Equal(msgs[0].Data, signed) {
		t.Fatalf("received bytes differ from the signed bytes:\n%q\n%q", msgs[0].Data, signed)
	}
	vs := verify(t, srv, msgs[0].Data)
	if len(vs) != 2 || vs[0].Err != nil || vs[1].Err != nil {
		t.Fatalf("after SMTP: %d verifications, errors %v / %v", len(vs), vs[0].Err, vs[len(vs)-1].Err)
	}
}

func TestSignEdgeCases(t *testing.T) {
	s, srv := setup(t)
	if got := s.Domains(); len(got) != 1 || got[0] != "sluice.test" {
		t.Fatalf("Domains() = %q", got)
	}
	// No key for the domain: the message comes back untouched.
	out, err := s.Sign("other.test", []byte("From: a@other.test\nbody\n"))
	if err != nil || string(out) != "From: a@other.test\nbody\n" {
		t.Fatalf("unsigned domain: %q, %v", out, err)
	}
	// A header-only message gets an empty body and still verifies.
	out, err = s.Sign("sluice.test", []byte("From: a@sluice.test\r\nSubject: hi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range verify(t, srv, out) {
		if v.Err != nil {
			t.Fatalf("header-only message: %v", v.Err)
		}
	}
	for msg, want := range map[string]string{
		"Subject: no author\r\n\r\nbody\r\n":                       "no From",
		"From: a@sluice.test\r\nFrom: b@sluice.test\r\n\r\nx\r\n":  "more than one From",
		"From: a@sluice.test\r\nthis is not a header\r\n\r\nx\r\n": "malformed header line 2",
		" folded: first\r\nFrom: a@sluice.test\r\n\r\nx\r\n":       "continuation",
		"\r\nbody only\r\n": "no header",
		"":                  "empty message",
	} {
		if _, err := s.Sign("sluice.test", []byte(msg)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Sign(%q): err %v, want %q", msg, err, want)
		}
	}
}

func TestKeyLoading(t *testing.T) {
	k, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	// PKCS#1 RSA loads and signs like PKCS#8.
	pkcs1 := write(t, "pkcs1.pem", k[2])
	if _, err := dkim.NewSigner([]config.DKIM{{Domain: "a.test", Selector: "s1", KeyFile: pkcs1}}); err != nil {
		t.Fatalf("PKCS#1: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	files := map[string]string{
		"small":   write(t, "small.pem", smallPEM),
		"ec":      write(t, "ec.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})),
		"garbage": write(t, "garbage.pem", []byte("not a key")),
		"enc":     write(t, "enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})),
		"rsa":     write(t, "rsa.pem", k[0]),
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, c := range []struct {
		cfg  []config.DKIM
		want []string // substrings of the error
	}{
		{[]config.DKIM{{Domain: "a.test", Selector: "s", KeyFile: files["small"]}}, []string{files["small"], "1024 bits"}},
		{[]config.DKIM{{Domain: "a.test", Selector: "s", KeyFile: files["ec"]}}, []string{files["ec"], "ecdsa"}},
		{[]config.DKIM{{Domain: "a.test", Selector: "s", KeyFile: files["garbage"]}}, []string{files["garbage"], "no PEM"}},
		{[]config.DKIM{{Domain: "a.test", Selector: "s", KeyFile: files["enc"]}}, []string{files["enc"], "encrypted"}},
		{[]config.DKIM{{Domain: "a.test", Selector: "s", KeyFile: missing}}, []string{missing}},
		{[]config.DKIM{{Domain: "a.test", Selector: "s"}}, []string{"key_file is empty"}},
		{[]config.DKIM{{Domain: "", Selector: "s", KeyFile: files["rsa"]}}, []string{"domain", "empty"}},
		{[]config.DKIM{{Domain: "a.test", Selector: "bad sel", KeyFile: files["rsa"]}}, []string{"selector", "not allowed"}},
		{[]config.DKIM{
			{Domain: "a.test", Selector: "s", KeyFile: files["rsa"]},
			{Domain: "A.test", Selector: "S", KeyFile: files["rsa"]},
		}, []string{"configured twice"}},
	} {
		_, err := dkim.NewSigner(c.cfg)
		if err == nil {
			t.Errorf("NewSigner(%+v) accepted", c.cfg)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("NewSigner(%+v): %v; want it to mention %q", c.cfg, err, w)
			}
		}
	}
}

func TestGenerate(t *testing.T) {
	for _, bits := range []int{1024, 8192} {
		if _, _, err := dkim.GenerateRSA(bits); err == nil {
			t.Errorf("GenerateRSA(%d) accepted", bits)
		}
	}
	pemKey, txt, err := dkim.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	// RFC 8463 §4.2: p= is the bare 32-byte key, 44 base64 characters.
	if !strings.HasPrefix(txt, "v=DKIM1; k=ed25519; p=") || len(txt) != len("v=DKIM1; k=ed25519; p=")+44 {
		t.Fatalf("Ed25519 record %q", txt)
	}
	key, err := dkim.ParseKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := dkim.PublicRecord(key); again != txt {
		t.Fatalf("PublicRecord of the parsed key differs: %q vs %q", again, txt)
	}
	k, _ := keys()
	rsaKey, _ := dkim.ParseKey(k[0])
	if rec, _ := dkim.PublicRecord(rsaKey); !strings.HasPrefix(rec, "v=DKIM1; k=rsa; p=MIIBIjAN") {
		t.Fatalf("RSA record %q (want a 2048-bit SubjectPublicKeyInfo)", rec)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := dkim.PublicRecord(ec); err == nil {
		t.Fatal("PublicRecord accepted an ECDSA key")
	}
}

// benchMessage is the campaign padded to 1 KiB, the size issue 17 measures.
var benchMessage = func() []byte {
	const line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
	msg := campaign + strings.Repeat(line, (1024-len(campaign))/len(line))
	return []byte(msg + strings.Repeat("x", 1024-len(msg)-2) + "\r\n")
}()

// benchSigners returns, for each RSA backend built in, signers for
// rsa-2048, ed25519 and both (dual signing, RFC 8463 §6).
func benchSigners(b *testing.B) map[string]map[string]*dkim.Signer {
	k, err := keys()
	if err != nil {
		b.Fatal(err)
	}
	rsaFile, edFile := write(b, "rsa.pem", k[0]), write(b, "ed.pem", k[1])
	sets := map[string][]config.DKIM{
		"rsa-2048": {{Domain: "sluice.test", Selector: "rsa", KeyFile: rsaFile}},
		"ed25519":  {{Domain: "sluice.test", Selector: "ed", KeyFile: edFile}},
		"rsa+ed25519": {
			{Domain: "sluice.test", Selector: "rsa", KeyFile: rsaFile},
			{Domain: "sluice.test", Selector: "ed", KeyFile: edFile},
		},
	}
	out := map[string]map[string]*dkim.Signer{}
	for _, be := range backends() {
		b.Setenv(dkim.BackendEnv, be)
		out[be] = map[string]*dkim.Signer{}
		for name, cfg := range sets {
			if out[be][name], err = dkim.NewSigner(cfg); err != nil {
				b.Fatal(err)
			}
		}
	}
	return out
}

// BenchmarkSign is one goroutine's signing rate for a 1 KiB message:
// whole Sign calls (CRLF check, canonicalisation, SHA-256, signature,
// header), per RSA backend.
func BenchmarkSign(b *testing.B) {
	signers := benchSigners(b)
	for _, be := range backends() {
		for _, set := range []string{"rsa-2048", "ed25519", "rsa+ed25519"} {
			if be != "go" && set == "ed25519" {
				continue // no RSA: the same as go
			}
			s := signers[be][set]
			b.Run(fmt.Sprintf("%s/%s/%dB", be, set, len(benchMessage)), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(benchMessage)))
				cpu := dkim.CPUTime()
				for b.Loop() {
					if _, err := s.Sign("sluice.test", benchMessage); err != nil {
						b.Fatal(err)
					}
				}
				dkim.ReportRates(b, dkim.CPUTime()-cpu)
			})
		}
	}
}

// BenchmarkSignParallel is the machine's rate (every core, GOMAXPROCS
// goroutines) for a 1 KiB message signed rsa-2048.
func BenchmarkSignParallel(b *testing.B) {
	signers := benchSigners(b)
	for _, be := range backends() {
		s := signers[be]["rsa-2048"]
		b.Run(be+"/rsa-2048", func(b *testing.B) {
			cpu := dkim.CPUTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign("sluice.test", benchMessage); err != nil {
						b.Error(err)
						return
					}
				}
			})
			dkim.ReportRates(b, dkim.CPUTime()-cpu)
		})
	}
}
