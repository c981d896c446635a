package deliver

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// startTLS upgrades a session that has said EHLO. go-smtp's client only
// offers STARTTLS inside NewClientStartTLS, which would greet as
// "localhost"; so sluice issues STARTTLS itself on the raw connection and
// hands the TLS connection to a fresh client, feeding it a synthetic 220
// so the client can EHLO again with our name, as RFC 3207 §4.2 requires.
func startTLS(conn net.Conn, _ *smtp.Client, cfg SMTPConfig, serverName string) (*smtp.Client, error) {
	_ = conn.SetDeadline(time.Now().Add(cfg.CommandTimeout))
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	// The server sends nothing after its 220 until our ClientHello, so this
	// reader cannot swallow TLS bytes.
	if _, _, err := textproto.NewReader(bufio.NewReaderSize(conn, 512)).ReadResponse(220); err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // opportunistic TLS, RFC 7435
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("starttls handshake: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	c := smtp.NewClient(&bannerConn{Conn: tc, r: io.MultiReader(strings.NewReader("220 tls\r\n"), tc)})
	c.CommandTimeout = cfg.CommandTimeout
	c.SubmissionTimeout = cfg.DataTimeout
	if err := c.Hello(cfg.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("ehlo after starttls: %w", err)
	}
	return c, nil
}

// bannerConn reads a synthetic greeting before the real stream.
type bannerConn struct {
	net.Conn
	r io.Reader
}

func (b *bannerConn) Read(p []byte) (int, error) { return b.r.Read(p) }
