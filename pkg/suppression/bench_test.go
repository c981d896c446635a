package suppression

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkCheck checks 1,000 addresses per call against a list of 100,000
// entries; about 1 in 10 is suppressed.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	es := make([]Entry, 100_000)
	for i := range es {
		es[i] = Entry{Address: fmt.Sprintf("user%d@dom%d.test", i, i%997), Reason: HardBounce, Detail: "550 5.1.1 user unknown"}
	}
	if err := f.l.AddMany(ctx, es); err != nil {
		b.Fatal(err)
	}
	addrs := make([]string, 1000)
	for i := range addrs {
		if i%10 == 0 {
			addrs[i] = fmt.Sprintf("user%d@dom%d.test", i*37, i*37%997)
		} else {
			addrs[i] = fmt.Sprintf("someone%d@else%d.test", i, i%50)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	blocked := 0
	for b.Loop() {
		res, err := f.l.Check(ctx, LaneMarketing, addrs)
		if err != nil {
			b.Fatal(err)
		}
		blocked = 0
		for _, e := range res {
			if e != nil {
				blocked++
			}
		}
	}
	if blocked != 100 {
		b.Fatalf("blocked %d, want 100", blocked)
	}
	b.ReportMetric(float64(b.N*len(addrs))/b.Elapsed().Seconds(), "addrs/s")
}
