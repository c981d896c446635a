//go:build openssl && cgo

package libcrypto

/*
#cgo LDFLAGS: -lcrypto
#include <stdlib.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

// sluice_load parses a DER private key (PKCS#1 or PKCS#8; d2i_AutoPrivateKey
// detects which). On failure it returns NULL and the OpenSSL error code.
// The error queue is per thread and a goroutine may move between threads
// between cgo calls, so each helper reads and clears it itself.
static EVP_PKEY *sluice_load(const unsigned char *der, long len, unsigned long *err) {
	ERR_clear_error();
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, len);
	if (k == NULL)
		*err = ERR_peek_last_error();
	ERR_clear_error();
	return k;
}

// sluice_sign writes the RSASSA-PKCS1-v1_5 signature of a SHA-256 digest
// (RFC 8017 §8.2.1: DigestInfo(sha256, dgst), padded, raised to d) to
// sig, which has room for EVP_PKEY_get_size bytes. It returns 0, or the
// step that failed with its OpenSSL error code in *err.
//
// A context per call: the EVP_PKEY is only read while signing, so one key
// is shared by every thread (OpenSSL 3 documents this as safe), and a
// context is a few microseconds against the ~250 us of the RSA operation.
static int sluice_sign(EVP_PKEY *k, const unsigned char *dgst, size_t dlen,
                       unsigned char *sig, size_t *siglen, unsigned long *err) {
	int step = 0;
	ERR_clear_error();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
	if (ctx == NULL) { step = 1; goto out; }
	// A signature over an already-computed digest (go-msgauth hashes).
	if (EVP_PKEY_sign_init(ctx) <= 0) { step = 2; goto out; }
	// PKCS#1 v1.5, what DKIM's rsa-sha256 is (RFC 6376 §3.3.1) ...
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0) { step = 3; goto out; }
	// ... with the SHA-256 DigestInfo prefix; this also makes OpenSSL
	// check that dlen is 32.
	if (EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0) { step = 4; goto out; }
	if (EVP_PKEY_sign(ctx, sig, siglen, dgst, dlen) <= 0) { step = 5; goto out; }
out:
	if (step != 0)
		*err = ERR_peek_last_error();
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx); // NULL is fine
	return step;
}
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// Available reports whether this build signs with libcrypto.
const Available = true

// signer is one RSA key loaded into libcrypto.
type signer struct {
	pkey *C.EVP_PKEY
	size int             // signature length in bytes
	key  *rsa.PrivateKey // for Public and for hashes other than SHA-256
}

// New loads k into libcrypto and returns a crypto.Signer for it. Sign
// takes a SHA-256 digest and returns the same bytes as crypto/rsa's
// SignPKCS1v15 (PKCS#1 v1.5 is deterministic); any other hash or PSS is
// passed to crypto/rsa. New signs once and checks the signature with
// crypto/rsa, so a libcrypto that disagrees with Go is found at start.
func New(k *rsa.PrivateKey) (crypto.Signer, error) {
	der := x509.MarshalPKCS1PrivateKey(k)
	cder := C.CBytes(der)
	clear(der)
	var cerr C.ulong
	pkey := C.sluice_load((*C.uchar)(cder), C.long(len(der)), &cerr)
	C.OPENSSL_cleanse(cder, C.size_t(len(der))) // the private key
	C.free(cder)
	if pkey == nil {
		return nil, fmt.Errorf("libcrypto: load key: %s", errString(cerr))
	}
	s := &signer{pkey: pkey, size: int(C.EVP_PKEY_get_size(pkey)), key: k}
	// The key lives as long as s; free it with s.
	runtime.AddCleanup(s, func(p *C.EVP_PKEY) { C.EVP_PKEY_free(p) }, pkey)
	digest := sha256.Sum256([]byte("sluice libcrypto self-test"))
	sig, err := s.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return nil, fmt.Errorf("libcrypto: self-test signature does not verify: %w", err)
	}
	return s, nil
}

// Public returns the *rsa.PublicKey (go-msgauth picks the algorithm by
// its type).
func (s *signer) Public() crypto.PublicKey { return &s.key.PublicKey }

// Sign signs digest, a SHA-256 hash, with RSASSA-PKCS1-v1_5. rand is not
// used: the padding is deterministic, and OpenSSL blinds the private-key
// operation with its own generator.
func (s *signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss || opts.HashFunc() != crypto.SHA256 {
		return s.key.Sign(rand, digest, opts)
	}
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("libcrypto: digest is %d bytes, want %d for SHA-256", len(digest), sha256.Size)
	}
	sig := make([]byte, s.size)
	siglen := C.size_t(len(sig))
	var cerr C.ulong
	// Go memory passed for the duration of the call only, and without
	// Go pointers inside: allowed by the cgo pointer rules.
	step := C.sluice_sign(s.pkey, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &siglen, &cerr)
	runtime.KeepAlive(s) // s.pkey must outlive the call
	if step != 0 {
		return nil, fmt.Errorf("libcrypto: %s: %s", signSteps[step-1], errString(cerr))
	}
	return sig[:siglen], nil
}

// signSteps names sluice_sign's steps, from 1.
var signSteps = [...]string{"EVP_PKEY_CTX_new", "EVP_PKEY_sign_init",
	"EVP_PKEY_CTX_set_rsa_padding", "EVP_PKEY_CTX_set_signature_md", "EVP_PKEY_sign"}

// errString is OpenSSL's text for an error code.
func errString(code C.ulong) string {
	if code == 0 {
		return "unknown error"
	}
	var buf [256]C.char
	C.ERR_error_string_n(code, &buf[0], C.size_t(len(buf)))
	return C.GoString(&buf[0])
}
