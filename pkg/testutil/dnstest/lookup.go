package dnstest

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// LookupTXT asks the server for name's TXT records over miekg/dns, joining
// each record's strings as RFC 6376 §3.6.2.2 requires. Its signature fits
// go-msgauth's dkim.VerifyOptions.LookupTXT.
func (s *Server) LookupTXT(name string) ([]string, error) {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.SetEdns0(4096, false)
	r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, s.Addr)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, nil
}
