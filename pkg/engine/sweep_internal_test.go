package engine

import (
	"testing"
	"time"
)

// The sweep clock: every sweepEvery, at once when Redis failed since the
// last sweep began, and never faster than sweepRetry while sweeps fail.
func TestSweepClock(t *testing.T) {
	var s sweeps
	t0 := time.Now()
	if s.due("lines", t0, time.Time{}) {
		t.Error("due at once after the start (the start put everything back)")
	}
	if !s.due("lines", t0.Add(sweepEvery), time.Time{}) {
		t.Error("not due after sweepEvery")
	}
	s.done("lines", t0.Add(sweepEvery), t0.Add(sweepEvery), true)
	failed := t0.Add(sweepEvery + time.Second)
	at := failed.Add(time.Second)
	if !s.due("lines", at, failed) {
		t.Error("not due after an error streak since the last sweep")
	}
	s.done("lines", at, at, false)
	if s.due("lines", at.Add(sweepRetry/2), failed) {
		t.Error("a failed sweep is tried again before sweepRetry")
	}
	if !s.due("lines", at.Add(sweepRetry+time.Millisecond), failed) {
		t.Error("a failed sweep is not tried again after sweepRetry")
	}
}
