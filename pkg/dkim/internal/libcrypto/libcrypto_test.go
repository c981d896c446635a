package libcrypto_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/pkg/dkim/internal/libcrypto"
)

var key2048 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func newSigner(t testing.TB) (*rsa.PrivateKey, crypto.Signer) {
	t.Helper()
	k, err := key2048()
	if err != nil {
		t.Fatal(err)
	}
	s, err := libcrypto.New(k)
	if !libcrypto.Available {
		if !errors.Is(err, libcrypto.ErrUnavailable) {
			t.Fatalf("New without libcrypto: %v, want ErrUnavailable", err)
		}
		t.Skip("built without -tags openssl (or without cgo): the libcrypto signer is not compiled in")
	}
	if err != nil {
		t.Fatal(err)
	}
	return k, s
}

// TestSameAsGo: PKCS#1 v1.5 is deterministic, so libcrypto and crypto/rsa
// must return the same bytes for the same key and digest.
func TestSameAsGo(t *testing.T) {
	k, s := newSigner(t)
	if pub, ok := s.Public().(*rsa.PublicKey); !ok || !pub.Equal(&k.PublicKey) {
		t.Fatalf("Public() = %T, not the key's public half", s.Public())
	}
	for _, sz := range []int{2048, 3072, 4096} {
		k := k
		if sz != 2048 {
			var err error
			if k, err = rsa.GenerateKey(rand.Reader, sz); err != nil {
				t.Fatal(err)
			}
		}
		s, err := libcrypto.New(k)
		if err != nil {
			t.Fatalf("%d bits: %v", sz, err)
		}
		for i := range 20 {
			d := sha256.Sum256(fmt.Appendf(nil, "message %d", i))
			got, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d bits, digest %d: libcrypto and crypto/rsa signatures differ", sz, i)
			}
		}
	}
}

func TestOtherHashesAndErrors(t *testing.T) {
	k, s := newSigner(t)
	// Not SHA-256: crypto/rsa signs (same bytes as calling it directly).
	d := sha512.Sum512([]byte("x"))
	got, err := s.Sign(rand.Reader, d[:], crypto.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA512, d[:], got); err != nil {
		t.Fatalf("SHA-512 fallback: %v", err)
	}
	pss, err := s.Sign(rand.Reader, d[:32], &rsa.PSSOptions{Hash: crypto.SHA256})
	if err != nil || rsa.VerifyPSS(&k.PublicKey, crypto.SHA256, d[:32], pss, nil) != nil {
		t.Fatalf("PSS fallback: %v", err)
	}
	for _, n := range []int{0, 20, 31, 33, 64} {
		if _, err := s.Sign(rand.Reader, make([]byte, n), crypto.SHA256); err == nil {
			t.Errorf("a %d-byte SHA-256 digest was signed", n)
		}
	}
}

// TestConcurrent shares one key between goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	k, s := newSigner(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				d := sha256.Sum256(fmt.Appendf(nil, "%d/%d", g, i))
				sig, err := s.Sign(nil, d[:], crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// BenchmarkSign compares the raw RSA-2048 signature, libcrypto against
// crypto/rsa, on a precomputed digest.
func BenchmarkSign(b *testing.B) {
	k, s := newSigner(b)
	d := sha256.Sum256([]byte("x"))
	for name, sign := range map[string]func() error{
		"openssl": func() error { _, err := s.Sign(nil, d[:], crypto.SHA256); return err },
		"go":      func() error { _, err := k.Sign(nil, d[:], crypto.SHA256); return err },
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := sign(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
		})
	}
}
