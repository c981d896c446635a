package streams

import "testing"

func TestHistoryKeepsTheLastTenAttempts(t *testing.T) {
	var earlier []Attempt
	var rec Record
	for i := 1; i <= 25; i++ {
		rec = Record{Status: "deferred", Code: 400 + i, Attempts: i, At: int64(i), Earlier: earlier}
		earlier = rec.NextEarlier()
	}
	h := rec.History()
	if len(h) != HistoryLimit || h[0].Code != 416 || h[9].Code != 425 {
		t.Fatalf("history %+v", h)
	}
	if h := (Record{Status: "queued"}).History(); len(h) != 0 {
		t.Fatalf("a queued record has history %+v", h)
	}
}
