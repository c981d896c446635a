package bulk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/suppression"
)

// TestMillionRoundTrip exports, removes and re-imports 1,000,000 entries
// and logs time, peak RSS (VmHWM) of each phase and Redis memory per
// entry. It takes about a minute, so it only runs with SLUICE_BENCH_1M=1:
//
//	SLUICE_BENCH_1M=1 go test -run Million -v ./pkg/suppression/
func TestMillionRoundTrip(t *testing.T) {
	if os.Getenv("SLUICE_BENCH_1M") != "1" {
		t.Skip("set SLUICE_BENCH_1M=1 to run the 1,000,000-entry round trip")
	}
	const n = 1_000_000
	ctx := context.Background()
	f := newFixture(t)
	dir := t.TempDir()

	start := time.Now()
	for i := 0; i < n; i += 10_000 {
		es := make([]suppression.Entry, 10_000)
		for j := range es {
			es[j] = genEntry(i + j)
		}
		if err := f.l.AddMany(ctx, es); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("fill: %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	memory := func(keys []string) (sum int64) {
		for _, k := range keys {
			m, _ := f.rdb.MemoryUsage(ctx, k, 0).Result()
			sum += m
		}
		return sum
	}
	hashMem, auditMem := memory(f.hashes), memory(f.audits)
	t.Logf("redis: entries hash %d MB (%d B/entry), audit stream %d MB for %d events",
		hashMem>>20, hashMem/n, auditMem>>20, xlen(t, f))

	t0 := time.Now()
	if ev, err := f.l.Audit(ctx, "user999999.n@dom8.test"); err != nil || len(ev) != 1 {
		t.Fatalf("audit: %v %v", ev, err)
	}
	t.Logf("audit lookup over the full stream: %v", time.Since(t0).Round(time.Millisecond))

	first := filepath.Join(dir, "first.csv")
	sum1 := exportFile(t, f.l, first, n, WithTempDir(dir))

	resetPeak(t)
	start = time.Now()
	removed := 0
	err := eachAddress(first, func(batch []string) error {
		k, err := f.l.RemoveMany(ctx, batch, "bench", "1M round trip")
		removed += k
		return err
	})
	if err != nil || removed != n {
		t.Fatalf("removed %d: %v", removed, err)
	}
	t.Logf("remove: %v, peak RSS %d MB", time.Since(start).Round(time.Millisecond), peakMB(t))

	resetPeak(t)
	start = time.Now()
	in, err := os.Open(first)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Import(ctx, f.l, in, FormatCSV, Defaults{Source: "bench"})
	in.Close()
	if err != nil || res.Added != n || res.BadCount != 0 {
		t.Fatalf("import: %+v %v", res, err)
	}
	el := time.Since(start)
	t.Logf("import: %v (%.0f entries/s), peak RSS %d MB", el.Round(time.Millisecond), n/el.Seconds(), peakMB(t))

	if sum2 := exportFile(t, f.l, filepath.Join(dir, "second.csv"), n, WithTempDir(dir)); sum2 != sum1 {
		t.Fatal("second export differs from the first")
	}
}

func exportFile(t *testing.T, l *suppression.List, path string, n int, opts ...Option) [32]byte {
	t.Helper()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	resetPeak(t)
	start := time.Now()
	h := sha256.New()
	k, err := Export(context.Background(), l, io.MultiWriter(out, h), FormatCSV, suppression.Filter{}, opts...)
	if err != nil || k != n {
		t.Fatalf("export: %d, %v", k, err)
	}
	el := time.Since(start)
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	t.Logf("export: %v (%.0f entries/s, %d MB), peak RSS %d MB", el.Round(time.Millisecond), float64(n)/el.Seconds(), st.Size()>>20, peakMB(t))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// eachAddress streams the email column of a CSV export in batches.
func eachAddress(path string, fn func([]string) error) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	r := csv.NewReader(bufio.NewReader(in))
	if _, err := r.Read(); err != nil {
		return err
	}
	var batch []string
	for {
		rec, err := r.Read()
		if err == io.EOF || len(batch) == 10_000 {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		batch = append(batch, rec[0])
	}
}

// resetPeak restarts VmHWM (Linux: "5" to clear_refs).
func resetPeak(t *testing.T) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset VmHWM: %v", err)
	}
}

func peakMB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) {
				kb = kb*10 + int(c-'0')
			}
			return kb >> 10
		}
	}
	return -1
}
