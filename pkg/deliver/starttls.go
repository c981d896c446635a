package deliver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
)

// errTLSRefused is a STARTTLS answered with something other than 220; the
// session is still in plaintext and usable (RFC 3207 §4).
var errTLSRefused = errors.New("STARTTLS refused")

// startTLS upgrades a session that has said EHLO and says EHLO again over
// TLS, as RFC 3207 §4.2 requires: what the server offered in plaintext is
// forgotten.
func (c *conn) startTLS(base *tls.Config, hostname string) error {
	r, err := c.cmd(c.cfg.CommandTimeout, "STARTTLS")
	if err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	if r.code != 220 {
		return fmt.Errorf("%w: %s", errTLSRefused, r)
	}
	// Bytes after the 220 would be read as if they came over TLS: the
	// STARTTLS command-injection attack (CVE-2011-0411, RFC 3207 §5).
	if c.br.Buffered() > 0 {
		return errors.New("STARTTLS: server sent data before the TLS handshake")
	}
	tc := tls.Client(c.raw, tlsConfig(base, c.host))
	if err := c.deadline(bothDeadlines, c.cfg.CommandTimeout); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.nc, c.tls = tc, true
	c.br.Reset(tc)
	if r, err := c.hello(hostname); err != nil {
		return fmt.Errorf("EHLO after STARTTLS: %w", err)
	} else if r.code != 250 {
		return fmt.Errorf("EHLO after STARTTLS: %s", r)
	}
	return nil
}

// tlsConfig is the per-host client config. Without a configured base,
// certificates are not verified: this is opportunistic TLS (RFC 7435 §3),
// where an unauthenticated encrypted channel beats plaintext and MX
// certificates commonly fail verification. A base config (with RootCAs)
// turns verification on.
func tlsConfig(base *tls.Config, host string) *tls.Config {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opportunistic TLS, RFC 7435
	}
	if cfg.ServerName == "" && net.ParseIP(host) == nil {
		cfg.ServerName = strings.TrimSuffix(host, ".")
	}
	return cfg
}

// hello says EHLO and records the extensions offered (RFC 5321 §4.1.1.1),
// falling back to HELO for a server that does not know EHLO.
func (c *conn) hello(hostname string) (reply, error) {
	r, err := c.cmd(c.cfg.CommandTimeout, "EHLO "+hostname)
	if err != nil {
		return r, err
	}
	switch r.code {
	case 250:
		c.ext = map[string]string{}
		lines := strings.Split(r.text, "\n")
		for _, l := range lines[1:] {
			k, v, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(k)] = v
		}
	case 500, 501, 502, 504:
		c.ext = map[string]string{}
		return c.cmd(c.cfg.CommandTimeout, "HELO "+hostname)
	}
	return r, nil
}
