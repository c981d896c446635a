package bulk

import (
	"bytes"
	"context"
	"testing"

	"github.com/sluice-mta/sluice/pkg/suppression"
)

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
		if n, err := Export(ctx, f.l, &buf, FormatCSV, suppression.Filter{}); err != nil || n != benchEntries {
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
	if _, err := Export(ctx, f.l, &src, FormatCSV, suppression.Filter{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		if err := f.rdb.Del(ctx, append(f.hashes, f.audits...)...).Err(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := Import(ctx, f.l, bytes.NewReader(src.Bytes()), FormatCSV, Defaults{Source: "bench"})
		if err != nil || res.Added != benchEntries {
			b.Fatal(res, err)
		}
	}
	b.ReportMetric(float64(b.N*benchEntries)/b.Elapsed().Seconds(), "entries/s")
}
