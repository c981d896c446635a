package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// BenchmarkLaunch runs the real campaignctl binary's launch of a 100,000-
// and a 300,000-row list (CSV and JSONL) into a redis-server of its own
// with AOF (appendfsync everysec), and reports the rows enqueued per
// second, campaignctl's peak RSS (the kernel's ru_maxrss of the exited
// process: flat in the list's size when the list is streamed), its CPU per
// row and redis-server's. Issue 17's target is ≥ 250,000 rows/s.
//
// BENCH_BASE=/path/to/another/tree (main's, say) also builds that tree's
// campaignctl and runs it on the same lists, alternating with this tree's,
// so the two are compared in one run.
func BenchmarkLaunch(b *testing.B) {
	trees := benchTrees()
	bins := map[string]string{}
	for _, t := range trees {
		bins[t.name] = buildCampaignctlIn(b, t.dir)
	}
	srv := redistest.NewServer(b, redistest.Options{AOF: true})
	rdb := srv.Client(b)
	dir := b.TempDir()
	for _, format := range []string{"csv", "jsonl"} {
		for _, n := range []int{100000, 300000} {
			path := launchCampaign(b, dir, format, n)
			for _, t := range trees {
				b.Run(fmt.Sprintf("%s-%dk/%s", format, n/1000, t.name), func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						runLaunch(b, bins[t.name], srv.URL(), rdb, path, n)
					}
				})
			}
		}
	}
}

// runLaunch launches path into an empty Redis and reports its figures.
func runLaunch(b *testing.B, bin, url string, rdb *redis.Client, path string, n int) {
	ctx := context.Background()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	redis0 := redisCost(b, rdb).usec
	cmd := exec.Command(bin, "-redis", url, "-prefix", "lb", "launch", "-q", path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	hwm := peakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	took := time.Since(t0)
	if err != nil {
		b.Fatalf("campaignctl launch: %v\n%s", err, out.String())
	}
	redis1 := redisCost(b, rdb).usec
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	want := fmt.Sprintf("%d enqueued", n)
	if !strings.Contains(out.String(), want) {
		b.Fatalf("campaignctl launch did not say %q:\n%s", want, out.String())
	}
	b.ReportMetric(float64(n)/took.Seconds(), "rows/s")
	b.ReportMetric(float64(<-hwm)/1024, "peak-rss-MB")
	b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(n), "ctl-cpu-µs/row")
	b.ReportMetric(float64(redis1-redis0)/float64(n), "redis-cpu-µs/row")
}

// peakRSS reads the process's VmHWM (kB) from /proc every 5 ms until it
// is gone and then sends the last value read: the peak up to 5 ms before
// its exit. (The exited process's ru_maxrss is no good here: os/exec
// starts it sharing this process's memory until exec, and counts that.)
func peakRSS(pid int) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var last int64
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				break
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
						last = kb
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		out <- last
	}()
	return out
}

// tree is a module tree whose campaignctl a benchmark runs.
type tree struct{ name, dir string }

// benchTrees are this tree ("this"), after BENCH_BASE's ("base") when set.
func benchTrees() []tree {
	if base := os.Getenv("BENCH_BASE"); base != "" {
		return []tree{{"base", base}, {"this", ""}}
	}
	return []tree{{"this", ""}}
}

// buildCampaignctlIn builds campaignctl from the module tree at dir (""
// for this one).
func buildCampaignctlIn(tb testing.TB, dir string) string {
	tb.Helper()
	if dir == "" {
		return buildCampaignctl(tb)
	}
	bin := filepath.Join(tb.TempDir(), "campaignctl-base")
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/campaignctl")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build campaignctl in %s: %v\n%s", dir, err, out)
	}
	return bin
}

// launchCampaign writes enginetest's campaign of n recipients (three
// merge fields, one of them non-ASCII) with its list in format: its CSV,
// or the same rows as JSONL.
func launchCampaign(tb testing.TB, dir, format string, n int) string {
	tb.Helper()
	id := fmt.Sprintf("launch-%s-%d", format, n)
	path := enginetest.Campaign(tb, dir, id, n, "example.test")
	if format == "csv" {
		return path
	}
	f, err := os.Create(filepath.Join(dir, id+".jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, `{"email":"user%05d@example.test","first_name":"Name%05d","city":"Zürich"}`+"\n", i, i)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	spec, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return enginetest.Write(tb, path, strings.Replace(string(spec), id+".csv", id+".jsonl", 1))
}
