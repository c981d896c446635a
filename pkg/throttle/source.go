package throttle

import "strings"

// Providers limit and judge mail per connecting IP, so a destination key
// has one state per egress source that sends to it from an address of
// its own: the bucket KEY@SOURCE. Sources on the default route (no
// address) share the machine's address and so the key's own bucket,
// KEY, which is also the only one of a deployment without sources: its
// state and `campaignctl limits` names stay as they were.
//
// What a deferral slows follows the outcome's scope: an IP- or
// provider-scoped one the bucket of the source that got it (the provider
// said it about that IP's traffic); a sending-domain one only the
// (sending domain, key) bucket KEY@d=DOMAIN (DomainBucket), which the
// engine consults besides the source's for that domain's mail, so the
// domain's mail slows from every source and other domains' does not.
const sourceSep = "@"

// domainMark starts the "source" part of a (sending domain, key) bucket;
// source names cannot hold "=" (config).
const domainMark = "d="

// DomainBucket names the state of key for mail of one sending (DKIM)
// domain, whichever source it leaves from: it has key's limits and rules.
func DomainBucket(key, domain string) string {
	return Bucket(key, domainMark+strings.ToLower(domain))
}

// DomainOf returns the sending domain of a DomainBucket name, ok false for
// any other bucket.
func DomainOf(name string) (domain string, ok bool) {
	_, src := SplitBucket(name)
	return strings.CutPrefix(src, domainMark)
}

// Bucket names the throttle state of key as sent from source ("" or a
// source on the default route: key itself).
func Bucket(key, source string) string {
	if source == "" {
		return key
	}
	return key + sourceSep + source
}

// SplitBucket returns a bucket name's destination key and source ("" for
// a key's own bucket). Keys never hold "@" (provider names, mx:HOSTS,
// route:HOST).
func SplitBucket(name string) (key, source string) {
	if i := strings.LastIndex(name, sourceSep); i > 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// BaseKey is the destination key of a bucket name.
func BaseKey(name string) string {
	k, _ := SplitBucket(name)
	return k
}
