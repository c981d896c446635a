package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The wire's limit on this machine: Postfix's smtp-source sending straight
// into Postfix's smtp-sink on loopback, 20 sessions, each message on a
// session kept open (-d). Issue 17 states sluice's targets as a ratio to
// this rate, measured in the same run (`make bench` installs the two
// programs with scripts/install-postfix.sh). Other benchmarks call
// RawSinkRate and report ReportRawRatio.

// rawSessions is smtp-source's -s: parallel sessions.
const rawSessions = 20

// RawSinkRate is smtp-source's rate (msg/s) for n messages of 1 KiB into
// smtp-sink, measured the first time it is asked for in this run and
// cached. It is 0, after a log line, where the two programs are missing.
func RawSinkRate(tb testing.TB, n int) float64 { return RawSinkRateSized(tb, n, 1024) }

// RawSinkRateSized is RawSinkRate for messages of size bytes (smtp-source's -l).
func RawSinkRateSized(tb testing.TB, n, size int) float64 {
	tb.Helper()
	k := rawKey{n, size}
	rawMu.Lock()
	defer rawMu.Unlock()
	if r, ok := rawRates[k]; ok {
		return r
	}
	r, err := measureRawSink(n, size)
	if err != nil {
		tb.Logf("raw smtp-source → smtp-sink rate not measured: %v", err)
	} else {
		tb.Logf("raw smtp-source -d -s %d -m %d -l %d → smtp-sink: %.0f msg/s", rawSessions, n, size, r)
	}
	rawRates[k] = r
	return r
}

// ReportRawRatio reports rate (msg/s) as a fraction of raw (a
// RawSinkRate) under unit, as "x-raw" benchmarks print it; nothing when
// raw is unknown.
func ReportRawRatio(b *testing.B, rate, raw float64, unit string) {
	if raw > 0 {
		b.ReportMetric(rate/raw, unit)
	}
}

type rawKey struct{ n, size int }

var (
	rawMu    sync.Mutex
	rawRates = map[rawKey]float64{}
)

// BenchmarkRawSink prints the raw rates the other benchmarks are compared
// with: 20,000 × 1 KiB and 5,000 × 100 KiB.
func BenchmarkRawSink(b *testing.B) {
	for _, c := range []struct {
		name    string
		n, size int
	}{{"1KiB", 20000, 1024}, {"100KiB", 5000, 100 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			r := RawSinkRateSized(b, c.n, c.size)
			if r == 0 {
				b.Skip("smtp-source/smtp-sink not installed (scripts/install-postfix.sh)")
			}
			b.ReportMetric(r, "raw-msg/s")
		})
	}
}

// measureRawSink runs smtp-sink on a free loopback port and times
// smtp-source sending n messages of size bytes to it.
func measureRawSink(n, size int) (float64, error) {
	sink, err := postfixTool("smtp-sink")
	if err != nil {
		return 0, err
	}
	source, err := postfixTool("smtp-source")
	if err != nil {
		return 0, err
	}
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	args := []string{addr, "1024"}
	if os.Geteuid() == 0 { // smtp-sink refuses to keep root's privileges
		args = append([]string{"-u", "nobody"}, args...)
	}
	srv := exec.Command(sink, args...)
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("start smtp-sink: %w", err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := waitListening(addr, 5*time.Second); err != nil {
		return 0, fmt.Errorf("smtp-sink: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, source, "-d", "-s", strconv.Itoa(rawSessions), "-m", strconv.Itoa(n), "-l", strconv.Itoa(size), addr)
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("smtp-source: %w: %s", err, out)
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// postfixTool finds a Postfix program: on PATH, or in /usr/sbin, where
// Debian puts them (not on an ordinary user's PATH).
func postfixTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := "/usr/sbin/" + name
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found (Debian package postfix: scripts/install-postfix.sh)", name)
	}
	return p, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("not listening on %s after %v", addr, within), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
