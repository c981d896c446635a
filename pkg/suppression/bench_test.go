package suppression

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkCheck checks 1,000 addresses per call against a list of 100,000
// entries; about 1 in 10 is suppressed.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	if err := f.l.AddMany(ctx, genEntries(100_000)); err != nil {
		b.Fatal(err)
	}
	addrs := make([]string, 1000)
	for i := range addrs {
		if i%10 == 0 {
			addrs[i] = fmt.Sprintf("user%d.%c@dom%d.test", i*37, 'a'+rune(i*37%26), i*37%997)
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

const benchEntries = 50_000

func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	if err := f.l.AddMany(ctx, genEntries(benchEntries)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		var buf bytes.Buffer
		if n, err := f.l.Export(ctx, &buf, FormatCSV, Filter{}); err != nil || n != benchEntries {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.N*benchEntries)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkImport imports into an empty list each round (the restore case).
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	if err := f.l.AddMany(ctx, genEntries(benchEntries)); err != nil {
		b.Fatal(err)
	}
	var src bytes.Buffer
	if _, err := f.l.Export(ctx, &src, FormatCSV, Filter{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := f.rdb.Del(ctx, f.l.hash, f.l.audit).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := f.l.Import(ctx, bytes.NewReader(src.Bytes()), FormatCSV, "bench")
		if err != nil || res.Added != benchEntries {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.N*benchEntries)/b.Elapsed().Seconds(), "entries/s")
}
