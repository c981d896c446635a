package dkim

import (
	"crypto"
	"crypto/rsa"
	"fmt"
	"os"

	"github.com/sluice-mta/sluice/pkg/dkim/internal/libcrypto"
)

// BackendEnv names the environment variable that picks the RSA signer
// when NewSigner runs: "go" (crypto/rsa) or "openssl" (libcrypto, only in
// a build with -tags openssl and cgo). Unset or empty: the fastest one
// built in. Ed25519 is always signed by crypto/ed25519.
const BackendEnv = "SLUICE_DKIM_BACKEND"

// Backend names the RSA signer NewSigner uses now: "openssl" in a build
// with -tags openssl (and cgo) unless SLUICE_DKIM_BACKEND=go, else "go".
// An engine logs it at start.
func Backend() string {
	b, err := backend()
	if err != nil {
		return "go"
	}
	return b
}

// backend reads BackendEnv.
func backend() (string, error) {
	switch v := os.Getenv(BackendEnv); v {
	case "":
		if libcrypto.Available {
			return "openssl", nil
		}
		return "go", nil
	case "go":
		return "go", nil
	case "openssl":
		if !libcrypto.Available {
			return "", fmt.Errorf("dkim: %s=openssl: %w", BackendEnv, libcrypto.ErrUnavailable)
		}
		return "openssl", nil
	default:
		return "", fmt.Errorf("dkim: %s=%q: want go or openssl", BackendEnv, v)
	}
}

// withBackend returns the signer for key on backend b: RSA keys move to
// libcrypto for "openssl"; everything else is signed as loaded.
func withBackend(b string, key crypto.Signer) (crypto.Signer, error) {
	k, ok := key.(*rsa.PrivateKey)
	if !ok || b != "openssl" {
		return key, nil
	}
	return libcrypto.New(k)
}
