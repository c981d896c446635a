package deliver

import (
	"net"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func splitHostPort(s string) (string, string, error) { return net.SplitHostPort(s) }

// wireAddr is addr as it goes into MAIL FROM or RCPT TO: when only the
// domain is non-ASCII, the domain becomes its A-label (IDNA, RFC 5890;
// the UTS #46 lookup profile pkg/mx resolves with), so the transaction
// needs no SMTPUTF8. A non-ASCII local part has no ASCII form and is left
// as it is (it needs SMTPUTF8, RFC 6531); so is a domain IDNA refuses.
func wireAddr(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || isASCII(addr[at+1:]) || !isASCII(addr[:at]) {
		return addr
	}
	domain, err := idna.Lookup.ToASCII(addr[at+1:])
	if err != nil {
		return addr
	}
	return addr[:at+1] + domain
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
