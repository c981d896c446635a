package submission

import (
	"net"
	"strings"
	"time"
)

// received returns the Received header for a submitted message (RFC 5321
// §4.4): the client's EHLO name and address, this host, and the protocol
// as registered by RFC 3848 — ESMTPSA when the session was encrypted and
// authenticated, ESMTPA when authenticated in clear text on loopback. No
// "for" clause: with several recipients it would tell each about the
// others (RFC 5321 §7.2).
func received(s *session, now time.Time) []byte {
	proto := "ESMTPA"
	if s.tls {
		proto = "ESMTPSA"
	}
	ip := "unknown"
	if t, ok := s.remote.(*net.TCPAddr); ok {
		if t.IP.To4() != nil {
			ip = t.IP.String()
		} else {
			ip = "IPv6:" + t.IP.String() // RFC 5321 §4.1.3 address literal
		}
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(heloName(s.conn.Hostname()))
	b.WriteString(" ([" + ip + "])\r\n\tby ")
	b.WriteString(s.srv.hostname)
	b.WriteString(" (sluice) with " + proto + ";\r\n\t")
	b.WriteString(now.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return []byte(b.String())
}

// heloName keeps the client-chosen EHLO argument from breaking the
// header's syntax: anything but a plain domain or address literal is
// replaced.
func heloName(h string) string {
	if h == "" || len(h) > 255 {
		return "unknown"
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-:[]_", c) >= 0) {
			return "unknown"
		}
	}
	return h
}
