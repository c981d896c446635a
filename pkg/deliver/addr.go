package deliver

import (
	"net"
	"strconv"

	"github.com/sluice-mta/sluice/pkg/address"
)

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func splitHostPort(s string) (string, string, error) { return net.SplitHostPort(s) }

// wireAddr is addr as it goes into MAIL FROM or RCPT TO: when only the
// domain is non-ASCII, with the domain's A-label, so the transaction needs
// no SMTPUTF8. A non-ASCII local part has no ASCII form and is left as it
// is (it needs SMTPUTF8, RFC 6531).
func wireAddr(addr string) string {
	if address.NeedsSMTPUTF8(addr) {
		return addr
	}
	return address.ASCIIDomain(addr)
}
