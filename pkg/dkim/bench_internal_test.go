package dkim

import (
	"crypto"
	"crypto/rsa"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
)

// nullRSA is an "RSA key" whose signatures cost nothing: with it, Sign
// costs what go-msgauth and this package add around the signature.
type nullRSA struct{ pub rsa.PublicKey }

func (n nullRSA) Public() crypto.PublicKey { return &n.pub }
func (nullRSA) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return make([]byte, 256), nil
}

// BenchmarkSignWithoutRSA measures everything but the RSA operation for a
// 1 KiB message signed rsa-sha256: CRLF check, header parsing, relaxed
// canonicalisation, SHA-256 of body and header, the DKIM-Signature field.
func BenchmarkSignWithoutRSA(b *testing.B) {
	pemKey, _, err := GenerateEd25519() // any valid key file: replaced below
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "k.pem")
	if err := os.WriteFile(path, pemKey, 0o600); err != nil {
		b.Fatal(err)
	}
	s, err := NewSigner([]config.DKIM{{Domain: "sluice.test", Selector: "s", KeyFile: path}})
	if err != nil {
		b.Fatal(err)
	}
	s.keys["sluice.test"][0].opts.Signer = nullRSA{rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}}
	hdr := "From: Sluice News <news@sluice.test>\r\nTo: reader@rcpt.test\r\nSubject: Weekly digest\r\n" +
		"Date: Fri, 02 Jan 2026 10:00:00 +0000\r\nMessage-ID: <c42.r7@sluice.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"
	const line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
	body := strings.Repeat(line, (1024-len(hdr))/len(line))
	msg := []byte(hdr + body + strings.Repeat("x", 1024-len(hdr)-len(body)-2) + "\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	cpu := CPUTime()
	for b.Loop() {
		if _, err := s.Sign("sluice.test", msg); err != nil {
			b.Fatal(err)
		}
	}
	ReportRates(b, CPUTime()-cpu)
}

// ReportRates reports messages per second of wall time (msg/s) and per
// second of CPU time the process used meanwhile (msg/cpu-s: what one core
// does when nothing else wants it; other work on a shared machine lowers
// msg/s only). cpu is CPUTime's growth over the benchmark loop.
func ReportRates(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "msg/cpu-s")
	}
}
