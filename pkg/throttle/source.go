package throttle

import (
	"context"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Providers limit and judge mail per connecting IP, so a destination key
// has one state per egress source that sends to it from an address of
// its own: the bucket KEY@SOURCE. Sources on the default route (no
// address) share the machine's address and so the key's own bucket,
// KEY, which is also the only one of a deployment without sources: its
// state and `campaignctl limits` names stay as they were.
//
// What a deferral slows follows the outcome's scope: an IP- or
// provider-scoped one the bucket of the source that got it (the provider
// said it about that IP's traffic); a sending-domain one every bucket of
// the key this engine uses (the domain's mail leaves from all of them).
const sourceSep = "@"

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

// slowSiblings passes a sending-domain deferral that slowed b on to the
// other buckets of b's destination key that this engine uses: the
// domain's reputation is the same whichever source its mail leaves from.
// Each is cut as its own deferral would cut it (to just under its own
// accepted rate).
func (l *Limiter) slowSiblings(b *bucket, out outcome.Outcome, text string) {
	if out.Scope != outcome.ScopeSendingDomain {
		return
	}
	var sibs []*bucket
	l.mu.Lock()
	for _, o := range l.buckets {
		if o != b && o.base == b.base {
			sibs = append(sibs, o)
		}
	}
	l.mu.Unlock()
	for _, o := range sibs {
		now := l.now()
		o.stepMu.Lock()
		o.mu.Lock()
		o.txSlots, o.mkSlots = nil, nil
		o.lease[0].next, o.lease[1].next = time.Time{}, time.Time{}
		q := stepReq{report: o.snapshot(now), event: evRate, text: text}
		o.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		res, err := l.step(ctx, o, q)
		cancel()
		o.mu.Lock()
		if err != nil {
			l.log.Error("throttle event", "key", o.key, "event", evRate, "err", err)
			o.counts.add(q.report)
		} else {
			l.applyStep(o, res, l.now(), "")
		}
		o.mu.Unlock()
		o.stepMu.Unlock()
	}
}
