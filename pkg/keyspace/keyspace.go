// Package keyspace names Redis keys. Every key of one deployment starts
// with the same hash tag, "{prefix}", so a Redis Cluster keeps them all in
// one slot and multi-key scripts and transactions (ack a job and count its
// outcome atomically) stay legal. To spread load across a cluster, run
// several deployments with different prefixes.
package keyspace

import "strings"

// Space is a key prefix, e.g. "sluice".
type Space string

// Key joins parts under the space's hash tag: Space("sluice").Key("c", "42")
// is "{sluice}:c:42".
func (s Space) Key(parts ...string) string {
	var b strings.Builder
	b.WriteString("{")
	b.WriteString(string(s))
	b.WriteString("}")
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}
