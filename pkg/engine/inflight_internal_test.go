package engine

import (
	"testing"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// A job is held once; a job going back in line may be claimed again from
// the entry put back (not from the one it was read from), and the run
// letting go of the old entry then leaves the new claim alone.
func TestInflightHandsOverJobsGoingBack(t *testing.T) {
	var f inflight
	pack := streams.Delivery{Job: streams.Job{ID: "j1"}, Stream: "line:a", StreamID: "5-0", Pack: 3}
	single := streams.Delivery{Job: streams.Job{ID: "j1"}, Stream: "line:a", StreamID: "9-0"}
	if !f.add(pack) || f.add(pack) || f.add(single) {
		t.Fatal("a held job claimed twice")
	}
	f.goingBack(single) // not the entry it is held as: no effect
	if f.add(single) {
		t.Fatal("claimed from another entry while not going back")
	}
	f.goingBack(pack)
	if f.add(pack) {
		t.Fatal("a job going back claimed again from the entry it was read from (the sweep's read of the pack)")
	}
	if !f.add(single) {
		t.Fatal("a job going back not claimable from the entry put back")
	}
	f.remove(pack) // the run that sent it back lets go
	if f.len() != 1 || f.add(single) || f.add(pack) {
		t.Fatalf("the new claim did not stand after the old run let go (%d held)", f.len())
	}
	f.remove(single)
	if f.len() != 0 {
		t.Fatalf("%d held after the new claim let go", f.len())
	}
}
