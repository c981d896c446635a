package engine

import (
	"context"
	"sync"
	"time"
)

// pollEvery is how often, at most, the line server reads the due lines
// while its workers hold at least bulkInFlight jobs. Without it, a busy
// line server polls again as soon as a run ends: every poll is a round
// trip to each master (the due lines of every shard), and each take,
// route and settle that follows carries only what came in meanwhile, so
// more masters and more engines meant more and smaller requests on each
// (BENCHMARKS.md, 2026-11-30, issue 12). Paced, the jobs of ~10 ms are
// taken, routed and settled together. A poll after a quieter spell (fewer
// jobs in flight: the first message of a campaign) is not held back, nor
// one that transactional mail is waiting for: the router cuts the pace
// short when it routes a transactional job (urgent), so transactional
// mail never waits behind a campaign's pace.
const pollEvery = 10 * time.Millisecond

// bulkInFlight is the number of jobs in this engine's workers from which
// polls are paced: two sessions' worth.
const bulkInFlight = 2 * perSession

// pollPace spaces the line server's polls under bulk load.
type pollPace struct {
	mu   sync.Mutex
	last time.Time // the previous poll
	// urgent cuts a poll's wait short (transactional jobs routed).
	urgent chan struct{}
}

func newPollPace() pollPace { return pollPace{urgent: make(chan struct{}, 1)} }

// hurry cuts the current or next wait short.
func (p *pollPace) hurry() {
	select {
	case p.urgent <- struct{}{}:
	default:
	}
}

// delay is how long a poll at now waits, with inFlight jobs in the
// workers: what is left of pollEvery since the previous poll under bulk
// load, else nothing.
func (p *pollPace) delay(now time.Time, inFlight int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if inFlight < bulkInFlight || p.last.IsZero() {
		return 0
	}
	return max(p.last.Add(pollEvery).Sub(now), 0)
}

// wait holds a poll back as delay says (wake-ups meanwhile change nothing:
// the poll after it sees their lines) unless hurried, then notes the
// poll's time.
func (p *pollPace) wait(ctx context.Context, inFlight int) {
	if d := p.delay(time.Now(), inFlight); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-p.urgent:
		case <-t.C:
		}
		t.Stop()
	}
	p.mark(time.Now())
}

// mark notes a poll at now.
func (p *pollPace) mark(now time.Time) {
	p.mu.Lock()
	p.last = now
	p.mu.Unlock()
}
