package intake

import "strings"

// Domains is a set of sender domains a user or API token may send as.
// Matching is exact (case-insensitive): allowing example.com does not
// allow mail.example.com, so a grant never reaches further than written.
type Domains map[string]bool

// NewDomains builds the set from a config list.
func NewDomains(list []string) Domains {
	d := make(Domains, len(list))
	for _, s := range list {
		d[strings.ToLower(strings.TrimSpace(s))] = true
	}
	return d
}

// Allows reports whether addr's domain is in the set.
func (d Domains) Allows(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	return at >= 0 && d[strings.ToLower(addr[at+1:])]
}
