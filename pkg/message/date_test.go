package message

import (
	"testing"
	"time"
)

// TestAppendDateMatchesFormat: the cached Date value is AppendFormat's,
// across seconds, zones (one of them changing its offset within the
// run: a DST switch) and times of one second in two zones in turn.
func TestAppendDateMatchesFormat(t *testing.T) {
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		zurich = time.FixedZone("CET", 3600)
	}
	base := time.Date(2026, 3, 29, 0, 59, 58, 0, time.UTC) // Zurich's DST starts at 01:00 UTC
	for i := 0; i < 400; i++ {
		at := base.Add(time.Duration(i) * 37 * time.Millisecond)
		for _, tm := range []time.Time{at, at.In(zurich), at.In(time.FixedZone("X", -5*3600)), at.Local()} {
			want := string(tm.AppendFormat([]byte("Date: "), time.RFC1123Z))
			if got := string(appendDate([]byte("Date: "), tm)); got != want {
				t.Fatalf("appendDate(%v) = %q, want %q", tm, got, want)
			}
		}
	}
}
