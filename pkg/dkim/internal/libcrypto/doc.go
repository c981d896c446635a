// Package libcrypto signs RSA PKCS#1 v1.5 SHA-256 digests with OpenSSL's
// libcrypto, about four times faster per core than crypto/rsa for
// RSA-2048 (see BENCHMARKS.md). It is compiled in only with the build tag
// "openssl" and cgo (OpenSSL 3.0 or later, Debian 12's libssl-dev);
// otherwise Available is false and New fails, and callers keep Go's
// crypto/rsa signer.
//
// The C part is deliberately small: load the key once from DER, then one
// EVP_PKEY_sign per signature. The rest (PEM parsing, key checks, hashing,
// DKIM itself) stays in Go.
package libcrypto

import "errors"

// ErrUnavailable is returned by New in a build without libcrypto.
var ErrUnavailable = errors.New("libcrypto signer not built in (build with -tags openssl, cgo and libssl-dev)")
