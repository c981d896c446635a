package engine

import (
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// A busy destination's runs grow to what its attempts make in runFor, no
// longer than maxRun; a slow or paced one's, and transactional mail's,
// stay at perSession; the time per attempt is smoothed over runs.
func TestRunLenFollowsTheAttemptsTime(t *testing.T) {
	mk := streams.Line{Lane: streams.Marketing, Key: "fast.test", Campaign: "c"}
	slow := streams.Line{Lane: streams.Marketing, Key: "slow.test", Campaign: "c"}
	tx := streams.Line{Lane: streams.Transactional, Key: "fast.test"}
	var f flow
	run := func(l streams.Line, per time.Duration) { // one run of ten jobs, a thousand left
		f.took(l, 1, 10, 1000)
		f.finished(l, 10, per)
	}
	for _, l := range []streams.Line{mk, slow, tx} {
		if n := f.runLen(l); n != perSession {
			t.Fatalf("%s before any run: %d, want %d", l.Name(), n, perSession)
		}
	}
	run(mk, 4*time.Millisecond)
	if n := f.runLen(mk); n != 25 { // 100 ms / 4 ms
		t.Fatalf("runs of 4 ms an attempt: %d jobs, want 25", n)
	}
	run(mk, 400*time.Microsecond) // smoothed: (3×4 + 0.4) / 4 = 3.1 ms
	if n := f.runLen(mk); n != 32 {
		t.Fatalf("after a faster run: %d jobs, want 32", n)
	}
	for range 8 {
		run(mk, 100*time.Microsecond)
	}
	if n := f.runLen(mk); n != maxRun {
		t.Fatalf("very fast attempts: %d jobs, want maxRun %d", n, maxRun)
	}
	run(slow, 50*time.Millisecond) // paced at 20/s
	run(tx, time.Millisecond)
	if n, m := f.runLen(slow), f.runLen(tx); n != perSession || m != perSession {
		t.Fatalf("slow destination %d, transactional %d; want %d both", n, m, perSession)
	}
	run(slow, 0) // a run that attempted nothing changes nothing
	if n := f.runLen(slow); n != perSession {
		t.Fatalf("slow after an empty run: %d", n)
	}
	f.took(mk, 1, 10, 0)
	f.finished(mk, 10, 100*time.Microsecond) // nothing going or left: forgotten, and known afresh
	if n := f.runLen(mk); n != perSession {
		t.Fatalf("a destination forgotten: %d, want %d", n, perSession)
	}
}
