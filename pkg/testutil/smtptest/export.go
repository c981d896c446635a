package smtptest

import "crypto/tls"

// NewSelfSigned returns a TLS config with a fresh self-signed certificate,
// for commands (mxsink) that run a receiver outside a test.
func NewSelfSigned() (*tls.Config, error) { return selfSigned() }
