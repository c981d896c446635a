//go:build !openssl || !cgo

package libcrypto

import (
	"crypto"
	"crypto/rsa"
)

// Available reports whether this build signs with libcrypto.
const Available = false

// New fails in this build: see ErrUnavailable.
func New(*rsa.PrivateKey) (crypto.Signer, error) { return nil, ErrUnavailable }
