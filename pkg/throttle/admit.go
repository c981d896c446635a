package throttle

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Admit grants a permit for one attempt to key on lane ("transactional"
// or "marketing") now, or returns the earliest time worth asking again:
// the end of a suspension, the next send slot, or a connection freeing.
func (l *Limiter) Admit(ctx context.Context, key, lane string) (*Permit, time.Time, error) {
	b := l.bucket(key)
	tx := lane == "transactional"
	ln := &b.lease[b2i(tx)]
	leased, poked := false, false
	if !b.awaitPrime(ctx) {
		return nil, l.now().Add(leaseWait), nil
	}
	for {
		now := l.now()
		b.mu.Lock()
		b.lastUse = now
		if tx {
			b.txSeen = now
		}
		// A suspension known only from a while ago is checked again:
		// an operator may have lifted it.
		// So are connection slots leased too long ago to count.
		stale := !b.ready || (now.Before(b.susp) && now.Sub(b.synced) > syncEvery) ||
			now.Sub(b.synced) > leaseFresh
		if !stale || leased {
			if now.Before(b.susp) {
				at := b.susp
				b.mu.Unlock()
				return nil, at, nil
			}
			next, ok := b.slot(tx, now, false)
			// No connection free: ask again soon, without leasing slots
			// that could not be used.
			if limit, shared := b.connLimit(tx, l.share, now); b.inUse >= limit {
				// Starved: a send slot is due now, or none is leased (it
				// leases none while refused); not a slot due later.
				starved := shared && (!ok || next.IsZero())
				b.starved = b.starved || starved
				// Other engines holding more slots than their share
				// hear of it now; the grant may come back at once.
				if starved && !poked {
					poked = true
					if l.poke(ctx, b, now) {
						b.mu.Unlock()
						continue
					}
				}
				// Even with no session of its own (capped at 0), the engine
				// holds the job briefly rather than postpone it for long:
				// another engine may have a session for it.
				at := now.Add(busyRetry)
				b.mu.Unlock()
				return nil, at, nil
			}
			if ok && next.IsZero() {
				b.slot(tx, now, true)
				p := l.grant(b, tx, now)
				b.mu.Unlock()
				return p, time.Time{}, nil
			}
			// The transactional lane leases its own slots rather than
			// queue for marketing's.
			if ok && (!tx || len(b.txSlots) > 0 || leased) {
				b.mu.Unlock()
				return nil, next, nil
			}
			if leased || now.Before(ln.next) {
				at := ln.next
				if ok && next.Before(at) {
					at = next
				}
				b.mu.Unlock()
				if at.Before(now.Add(leaseWait)) {
					at = now.Add(leaseWait)
				}
				return nil, at, nil
			}
		}
		if ln.busy || !b.stepMu.TryLock() {
			b.mu.Unlock()
			return nil, now.Add(leaseWait), nil
		}
		b.leases++
		q := l.leaseReq(b, ln, tx, now)
		b.mu.Unlock()

		if now, err := l.runLease(ctx, b, ln, q, time.Second); err != nil {
			return nil, now.Add(time.Second), err
		}
		leased = true
	}
}

// leaseReq marks lane ln's lease under way (ln.busy) and returns the step
// asking slots for it (tx: the transactional lane's). Caller holds b.mu
// and b.stepMu.
func (l *Limiter) leaseReq(b *bucket, ln *lease, tx bool, now time.Time) stepReq {
	ln.busy = true
	q := stepReq{report: b.snapshot(now), lane: "m", want: b.batch(tx, l.share)}
	if tx {
		q.lane = "t"
	}
	return q
}

// runLease runs leaseReq's step q and takes its result in; a failed
// step's counts are reported again by the next, and with backoff > 0 the
// lane leases again no sooner than backoff later. It ends the lease
// (ln.busy, b.stepMu) and returns the time the step ended.
func (l *Limiter) runLease(ctx context.Context, b *bucket, ln *lease, q stepReq, backoff time.Duration) (time.Time, error) {
	res, err := l.step(ctx, b, q)
	now := l.now()
	b.mu.Lock()
	ln.busy = false
	if err != nil {
		b.counts.add(q.report) // report again next time
		if backoff > 0 {
			ln.next = now.Add(backoff)
		}
	} else {
		l.applyStep(b, res, now, q.lane)
	}
	b.mu.Unlock()
	b.stepMu.Unlock()
	return now, err
}

// applyStep takes in a step's result; leased slots go to lane's queue.
// Caller holds b.mu.
func (l *Limiter) applyStep(b *bucket, r stepRes, now time.Time, lane string) {
	wasSuspended := !b.susp.IsZero()
	oldRate, wasReady := b.rate, b.ready
	b.apply(r, now)
	if raised := l.raised.Load(); raised != nil && wasReady &&
		((wasSuspended && b.susp.IsZero()) || b.rate > oldRate*1.1) {
		go (*raised)(b.base) // lines wait per destination, whatever the source
	}
	q, ln := &b.mkSlots, &b.lease[0]
	if lane == "t" {
		q, ln = &b.txSlots, &b.lease[1]
	}
	for _, off := range r.slots {
		*q = append(*q, now.Add(off))
	}
	switch {
	case r.suspended > 0:
		b.lease[0].next, b.lease[1].next = b.susp, b.susp
	case wasSuspended:
		b.lease[0].next, b.lease[1].next = time.Time{}, time.Time{} // lifted early
	case lane == "":
	case len(r.slots) == 0 && r.next >= 0:
		ln.next = now.Add(r.next)
	default:
		ln.next = time.Time{}
	}
	setGauges(b)
}

// grant hands out a permit. Caller holds b.mu.
func (l *Limiter) grant(b *bucket, tx bool, now time.Time) *Permit {
	b.inUse++
	b.notePeak(now)
	b.acc.start(now)
	b.met.inUse.Inc()
	p := &Permit{Key: b.key, MaxPerConn: b.lim.MaxMessagesPerConnection, Sessions: b.sess}
	p.done = func(out outcome.Outcome) { l.done(b, tx, now, out) }
	return p
}
