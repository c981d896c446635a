package throttle

import (
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
)

// bucket is this engine's side of one key: send slots leased from the
// shared GCRA, its share of the connections, and what it has seen since
// its last step (in-use count, accepted rate, outcome counts).
type bucket struct {
	key   string
	base  string // key without its source (BaseKey): the destination's
	label string // metrics label
	met   *bucketMetrics
	lim   config.Limits
	rules []*rule

	clock func() time.Time // the limiter's
	sess  *Sessions        // this bucket's session count, for deliver
	// stepMu is held from a step's snapshot to taking in its result (and
	// taken before mu): one step of a bucket at a time, so the slots it
	// may dial into never pass what Redis records it holds.
	stepMu sync.Mutex

	mu     sync.Mutex
	ready  bool      // state received from Redis at least once
	synced time.Time // when it was last received
	rate   float64
	conc   int // all engines
	// share is the connection slots this engine holds (sessions.go):
	// the most sessions it may have open, and permits at once.
	share int
	keep  int // the sessions it may keep open (at least share)
	open  int // sessions open toward the key (sessions.go)
	// engines is how many engines work the key (as of the last step).
	engines int
	// poking: a step reporting a refused connection is under way.
	poking  bool
	susp    time.Time
	state   string
	txSlots []time.Time // leased for the transactional lane
	mkSlots []time.Time // leased for marketing; transactional may use them too
	// lease is per lane (0 marketing, 1 transactional): when asking
	// Redis for slots is worth it again, and whether a worker is asking.
	lease [2]lease
	inUse int
	// sessCap, until sessCapUntil, is how many sessions the provider
	// let this engine have when it refused one more (see capSessions).
	sessCap      int
	sessCapUntil time.Time
	// peak is the most permits held at once lately (see notePeak).
	peak, peakPrev int
	peakSince      time.Time
	starved        bool
	txSeen         time.Time
	lastUse        time.Time
	indexed        time.Time // last added to the index of keys (index.go)
	acc            window
	latency        float64 // EWMA of attempt duration, seconds
	counts         report  // outcome counts not yet reported
	// priming is closed when the prime under way ends (nil: none; see
	// Prime); primes and leases count lease steps (StepsOf).
	priming        chan struct{}
	primes, leases int
}

// lease is one lane's asking Redis for slots: when it is worth it again,
// and whether a worker is asking.
type lease struct {
	next time.Time
	busy bool
}

// Timing of the local side.
const (
	// leaseHorizon is how far ahead slots are leased: a batch covers
	// 100 ms of the rate, so the per-message Redis cost is one step per
	// batch, and a rate cut takes effect within that.
	leaseHorizon = 100 * time.Millisecond
	// slotGrace is how late a leased slot may still be used; older ones
	// are dropped so a stalled engine does not burst.
	slotGrace = 100 * time.Millisecond
	// busyRetry is when to ask again while every connection is taken.
	busyRetry = 20 * time.Millisecond
	// leaseWait is when to ask again while another worker leases.
	leaseWait = 5 * time.Millisecond
	// txActiveFor: after a transactional Admit, marketing leaves the
	// transactional share free this long.
	txActiveFor = 2 * time.Second
	// minWindow is the least reaction window (see reactionWindow).
	minWindow = 500 * time.Millisecond
	maxBatch  = 500
)

// reactionWindow is how long after a decrease further deferrals are taken
// as the same burst: attempts admitted before the cut are still coming
// back. It covers a few attempt durations, at least minWindow.
func (b *bucket) reactionWindow() time.Duration {
	w := time.Duration(3 * b.latency * float64(time.Second))
	return min(max(w, minWindow), 10*time.Second)
}

// batch is how many slots to lease: leaseHorizon's worth of the rate,
// or of the transactional share for that lane (a small lane leasing a
// whole batch would let most of it expire unused).
func (b *bucket) batch(tx bool, share float64) int {
	r := b.rate
	if !b.ready {
		r = b.lim.StartRate
	}
	if tx && share > 0 {
		r *= share
	}
	n := int(r*leaseHorizon.Seconds() + 0.999)
	return min(max(n, 1), maxBatch)
}

// connLimit is how many permits lane may hold, and whether the limit is
// this engine's share of the key's connections (rather than a session
// cap): marketing leaves the transactional reserve free while that lane
// is active.
func (b *bucket) connLimit(tx bool, share float64, now time.Time) (int, bool) {
	n := b.share
	if !tx && share > 0 && now.Sub(b.txSeen) <= txActiveFor && b.share >= 2 {
		n -= max(1, int(share*float64(b.share)+0.5))
	}
	if now.Before(b.sessCapUntil) && b.sessCap < n {
		return b.sessCap, false
	}
	return n, true
}

// capSessions holds this engine to the sessions it has after the
// provider refused one more: the provider counts sessions of other
// senders too (or allows fewer than the limit says), so the engine that
// was refused steps back at once and probes again after connUp. The
// refused one was one past the sessions it has open (or the attempts
// holding permits, which each need one). Caller holds b.mu.
func (b *bucket) capSessions(now time.Time) {
	b.notePeak(now)
	b.sessCap = max(b.inUse, b.open)
	b.sessCapUntil = now.Add(connUp)
}

// notePeak tracks the most permits held at once over the last one to two
// connUp periods. Caller holds b.mu.
func (b *bucket) notePeak(now time.Time) {
	if now.Sub(b.peakSince) > connUp {
		b.peakPrev, b.peak, b.peakSince = b.peak, 0, now
	}
	b.peak = max(b.peak, b.inUse)
}

// slot finds a usable leased slot for the lane: transactional takes its
// own first, then marketing's. It drops stale slots. take removes the
// slot found. It returns the zero time when a slot is usable now, else
// the time of the next one (zero with ok false when there is none).
func (b *bucket) slot(tx bool, now time.Time, take bool) (next time.Time, ok bool) {
	b.txSlots = fresh(b.txSlots, now)
	b.mkSlots = fresh(b.mkSlots, now)
	queues := []*[]time.Time{&b.mkSlots}
	if tx {
		queues = []*[]time.Time{&b.txSlots, &b.mkSlots}
	}
	for _, q := range queues {
		if len(*q) > 0 && !(*q)[0].After(now) {
			if take {
				*q = (*q)[1:]
			}
			return time.Time{}, true
		}
	}
	for _, q := range queues {
		if len(*q) > 0 && (next.IsZero() || (*q)[0].Before(next)) {
			next = (*q)[0]
		}
	}
	return next, !next.IsZero()
}

// fresh drops slots too old to use.
func fresh(s []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(s) && now.Sub(s[i]) > slotGrace {
		i++
	}
	return s[i:]
}

// snapshot takes the report for a step and starts a new one.
func (b *bucket) snapshot(now time.Time) report {
	r := b.counts
	r.acc = b.acc.rate(now)
	r.inUse = b.inUse
	r.open = b.open
	// Until this step's grant is taken in, it may still dial up to its
	// current grant: it holds at least that.
	r.hold = max(b.open, b.sessLimit(b.share, now))
	b.notePeak(now)
	r.want = max(b.peak, b.peakPrev) // attempts at once lately: what it uses
	r.starved = b.starved
	r.txAct = now.Sub(b.txSeen) < txActiveFor
	r.window = b.reactionWindow()
	r.latency = b.latency
	b.counts = report{}
	b.starved = false
	return r
}

// apply takes in the shared state a step returned at now.
func (b *bucket) apply(r stepRes, now time.Time) {
	b.ready, b.synced = true, now
	b.rate, b.conc, b.share, b.state, b.engines = r.rate, r.conc, r.share, r.state, r.engines
	b.keep = r.keep
	b.susp = time.Time{}
	if r.suspended > 0 {
		b.susp = now.Add(r.suspended)
		b.txSlots, b.mkSlots = nil, nil
	}
}

// window measures the accepted rate over the last two seconds in
// 100 ms bins: the rate the provider really took, which a decrease aims
// just under.
type window struct {
	first   time.Time // start of the current stretch of activity
	lastAct time.Time
	last    int64 // bin index of the newest bin
	bins    [winBins]int
}

const (
	winBin  = 100 * time.Millisecond
	winBins = 20
	// minMeasure: a shorter stretch says too little about a rate.
	minMeasure = 400 * time.Millisecond
)

func (w *window) advance(idx int64) {
	if idx <= w.last {
		return
	}
	if idx-w.last >= winBins {
		w.bins = [winBins]int{}
	} else {
		for i := w.last + 1; i <= idx; i++ {
			w.bins[i%winBins] = 0
		}
	}
	w.last = idx
}

// start marks activity at now; after two idle seconds a new stretch
// begins, so idle time does not dilute the measure.
func (w *window) start(now time.Time) {
	if w.first.IsZero() || now.Sub(w.lastAct) > winBins*winBin {
		w.first = now
	}
	w.lastAct = now
}

func (w *window) add(now time.Time) {
	idx := now.UnixNano() / int64(winBin)
	w.advance(idx)
	w.bins[idx%winBins]++
}

// rate is accepted messages per second, -1 when the stretch is too short
// to tell.
func (w *window) rate(now time.Time) float64 {
	if w.first.IsZero() {
		return -1
	}
	idx := now.UnixNano() / int64(winBin)
	w.advance(idx)
	span := min(now.Sub(w.first), (winBins-1)*winBin+time.Duration(now.UnixNano()%int64(winBin)))
	if span < minMeasure {
		return -1
	}
	sum := 0
	for _, n := range w.bins {
		sum += n
	}
	return float64(sum) / span.Seconds()
}
