// Package libcrypto signs RSA PKCS#1 v1.5 SHA-256 digests with OpenSSL's
// libcrypto, about five times faster per core than crypto/rsa for
// RSA-2048 (see BENCHMARKS.md). It is compiled in only with the build tag
// "openssl" and cgo; otherwise Available is false and New fails, and
// callers keep Go's crypto/rsa signer.
//
// The C part is deliberately small: parse the key once (d2i), then one
// EVP_PKEY_sign per signature. Everything that is not the hot path (key
// parsing, validation, hashing) stays in Go.
package libcrypto

import "errors"

// ErrUnavailable is returned by New in a build without libcrypto.
var ErrUnavailable = errors.New("libcrypto signer not built in (build with -tags openssl, cgo and libssl-dev)")
