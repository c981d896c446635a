package engine

import (
	"testing"
	"time"
)

// The line server's polls are spaced by pollEvery only while the workers
// hold bulkInFlight jobs or more: the first poll, and any poll with few
// jobs in flight (a transactional message, a campaign's first), go at once.
func TestPollPace(t *testing.T) {
	p := newPollPace()
	t0 := time.Now()
	if d := p.delay(t0, 1000); d != 0 {
		t.Errorf("first poll held back %v", d)
	}
	p.mark(t0)
	if d := p.delay(t0.Add(5*time.Millisecond), bulkInFlight); d != pollEvery-5*time.Millisecond {
		t.Errorf("bulk poll 5 ms after the last: held back %v, want %v", d, pollEvery-5*time.Millisecond)
	}
	if d := p.delay(t0.Add(5*time.Millisecond), bulkInFlight-1); d != 0 {
		t.Errorf("poll with %d jobs in flight held back %v", bulkInFlight-1, d)
	}
	if d := p.delay(t0.Add(pollEvery+time.Millisecond), bulkInFlight); d != 0 {
		t.Errorf("bulk poll past pollEvery held back %v", d)
	}
}

// wait sleeps out the delay and notes the poll.
func TestPollPaceWait(t *testing.T) {
	p := newPollPace()
	p.wait(t.Context(), bulkInFlight) // the first: at once, noted
	start := time.Now()
	p.wait(t.Context(), bulkInFlight)
	if took := time.Since(start); took < pollEvery-time.Millisecond {
		t.Errorf("second bulk poll went after %v, want pollEvery (%v)", took, pollEvery)
	}
}

// A transactional job routed (hurry) cuts a paced poll's wait short: the
// poll goes long before pollEvery (the wait is made an hour to tell).
func TestPollPaceHurried(t *testing.T) {
	p := newPollPace()
	p.mark(time.Now().Add(time.Hour)) // the next bulk poll: an hour away
	done := make(chan struct{})
	go func() { p.wait(t.Context(), bulkInFlight); close(done) }()
	p.hurry()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a hurried poll still waited for the pace")
	}
}
