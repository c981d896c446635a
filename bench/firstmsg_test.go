package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// BenchmarkFirstMessage measures what a user waits for after typing
// `campaignctl launch` with an engine already running: from the start of
// the campaignctl process (built before the clock starts) to the first
// message of a 20,000-recipient campaign at the receiver, and to the
// command's exit. Issue 17's target is first message ≤ 100 ms. It also
// splits the wait at the lane's first bell ring (Redis's time of it, from
// the ring's stream id): first-ring-ms is campaignctl's part (start,
// validation, the first batch written), ring-to-msg-ms the engine's.
// BENCH_MONITOR=1 also logs, through Redis MONITOR, when each kind of
// command was first seen after the start: where the time goes;
// BENCH_MONITOR=all logs every command up to the first message (each cut
// to 100 characters).
// BENCH_BASE=/path/to/another/tree also runs that tree's campaignctl (with
// this tree's engine), as BenchmarkLaunch does.
func BenchmarkFirstMessage(b *testing.B) {
	for _, t := range benchTrees() {
		ctl := buildCampaignctlIn(b, t.dir)
		b.Run(t.name, func(b *testing.B) { firstMessage(b, ctl) })
	}
}

func firstMessage(b *testing.B, ctl string) {
	const n = 20000
	for i := 0; i < b.N; i++ {
		prefix := redistest.Prefix(b)
		var once sync.Once
		first := make(chan time.Time, 1)
		srv := smtptest.Start(b, smtptest.Options{Discard: true, Data: func(string, []string, []byte) error {
			once.Do(func() { first <- time.Now() })
			return nil
		}})
		cfg := enginetest.Config(prefix, srv.Addr)
		cfg.Delivery.Workers = 64
		enginetest.Start(b, cfg)
		path := enginetest.Campaign(b, b.TempDir(), "first", n, "example.test")
		time.Sleep(time.Second) // the engine is up and idle, waiting for work

		var mon *monitor
		if os.Getenv("BENCH_MONITOR") != "" {
			mon = startMonitor(b)
		}
		rang := firstRing(b, prefix)
		cmd := exec.Command(ctl, "-redis", redistest.URL(), "-prefix", prefix, "launch", "-q", path)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		exited := time.Since(t0)
		if err != nil {
			b.Fatalf("campaignctl launch: %v\n%s", err, out)
		}
		var firstAt time.Duration
		select {
		case at := <-first:
			firstAt = at.Sub(t0)
		case <-time.After(time.Minute):
			b.Fatal("no message within a minute of the launch")
		}
		if mon != nil {
			mon.report(b, t0, firstAt)
		}
		var ringAt time.Time
		select {
		case ringAt = <-rang:
		case <-time.After(10 * time.Second):
			b.Fatal("no ring of the marketing lane's bell")
		}
		// Let the campaign finish: an engine stopped mid-campaign waits out
		// its sessions.
		enginetest.WaitFinished(b, store.New(redistest.Client(b), keyspace.Space(prefix)), "first", 5*time.Minute)
		b.ReportMetric(float64(firstAt.Microseconds())/1000, "first-msg-ms")
		b.ReportMetric(float64(exited.Microseconds())/1000, "launch-exit-ms")
		b.ReportMetric(float64(ringAt.Sub(t0).Microseconds())/1000, "first-ring-ms")
		b.ReportMetric(float64(t0.Add(firstAt).Sub(ringAt).Microseconds())/1000, "ring-to-msg-ms")
	}
}

// firstRing waits (from now on) for the next ring of the marketing lane's
// bell under prefix and sends the time Redis gave it (its stream id's
// milliseconds).
func firstRing(tb testing.TB, prefix string) <-chan time.Time {
	tb.Helper()
	q := streams.New(redistest.Client(tb), keyspace.Space(prefix), "bench")
	last, err := q.LastRing(context.Background(), streams.Marketing)
	if err != nil {
		tb.Fatal(err)
	}
	out := make(chan time.Time, 1)
	go func() {
		r, err := q.Bell(context.Background(), streams.Marketing, last, time.Minute)
		ms, _, _ := strings.Cut(r.ID, "-")
		if n, perr := strconv.ParseInt(ms, 10, 64); err == nil && r.Rang && perr == nil {
			out <- time.UnixMilli(n)
		}
	}()
	return out
}

// buildCampaignctl builds the campaignctl binary into a temporary
// directory.
func buildCampaignctl(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "campaignctl")
	goTool, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("no go command to build campaignctl with: %v", err)
	}
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/sluice-mta/sluice/cmd/campaignctl").CombinedOutput(); err != nil {
		tb.Fatalf("go build campaignctl: %v\n%s", err, out)
	}
	return bin
}

// monitor records the commands redis-server executes (MONITOR, over a
// connection of its own), with the time each was seen.
type monitor struct {
	conn  net.Conn
	mu    sync.Mutex
	lines []seen
}

type seen struct {
	at   time.Time
	line string
}

func startMonitor(tb testing.TB) *monitor {
	tb.Helper()
	c, err := net.Dial("tcp", redistest.Addr())
	if err != nil {
		tb.Fatal(err)
	}
	m := &monitor{conn: c}
	tb.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, "MONITOR\r\n"); err != nil {
		tb.Fatal(err)
	}
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		tb.Fatalf("MONITOR: %q %v", line, err)
	}
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			m.mu.Lock()
			line = strings.TrimSpace(strings.TrimPrefix(line, "+"))
			m.lines = append(m.lines, seen{executedAt(line), line})
			m.mu.Unlock()
		}
	}()
	return m
}

// executedAt is the time Redis stamped a MONITOR line with (when it ran
// the command; the same clock as this process's): a loaded machine delays
// this reader, not the stamp. Now when the line has none.
func executedAt(line string) time.Time {
	sec, frac, ok := strings.Cut(strings.Fields(line + " ")[0], ".")
	s, err1 := strconv.ParseInt(sec, 10, 64)
	us, err2 := strconv.ParseInt(frac, 10, 64)
	if !ok || err1 != nil || err2 != nil || len(frac) != 6 {
		return time.Now()
	}
	return time.Unix(s, us*1000)
}

// report logs, for each command name and key kind, when it was first
// seen after t0, in order, up to the first message.
func (m *monitor) report(tb testing.TB, t0 time.Time, firstAt time.Duration) {
	time.Sleep(100 * time.Millisecond)
	_ = m.conn.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	done := map[string]bool{}
	for _, s := range m.lines {
		d := s.at.Sub(t0)
		if d < 0 || d > firstAt+50*time.Millisecond {
			continue
		}
		k := commandKind(s.line)
		if all := os.Getenv("BENCH_MONITOR") == "all"; all && k != "" && d <= firstAt {
			_, rest, _ := strings.Cut(s.line, "] ")
			out = append(out, fmt.Sprintf("%7.1f ms  %.100s", float64(d.Microseconds())/1000, rest))
			continue
		}
		if k == "" || done[k] {
			continue
		}
		done[k] = true
		out = append(out, fmt.Sprintf("%7.1f ms  %s", float64(d.Microseconds())/1000, k))
	}
	if os.Getenv("BENCH_MONITOR") != "all" {
		slices.Sort(out) // the others are in the order seen already
	}
	// To stderr: a benchmark's log is cut after a few lines.
	fmt.Fprintf(os.Stderr, "first message at %.1f ms; first time each command was seen:\n%s\n", float64(firstAt.Microseconds())/1000, strings.Join(out, "\n"))
}

// keyShape drops the quotes, the test's prefix and everything from the
// first digit or "|" of a key.
func keyShape(key string) string {
	key = strings.Trim(key, `"`)
	if i := strings.IndexByte(key, ':'); i >= 0 {
		key = key[i+1:]
	}
	if j := strings.IndexAny(key, "|0123456789"); j > 0 {
		key = key[:j]
	}
	return key
}

// commandKind reduces a MONITOR line (`1700000000.123456 [0 127.0.0.1:5]
// "XADD" "{p}:q:marketing" ...`) to its command and the shape of its first
// key (digits and the test's prefix dropped), or "" for the monitor's own.
func commandKind(line string) string {
	_, rest, ok := strings.Cut(line, "] ")
	if !ok {
		return ""
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return ""
	}
	kind := strings.Trim(f[0], `"`)
	switch {
	case strings.EqualFold(kind, "evalsha") && len(f) > 3: // EVALSHA sha numkeys key...
		sha := strings.Trim(f[1], `"`)
		kind += " " + sha[:min(8, len(sha))] + " " + keyShape(f[3])
	case len(f) > 1:
		kind += " " + keyShape(f[1])
	}
	return kind
}
