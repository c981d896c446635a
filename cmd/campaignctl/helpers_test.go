package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// bin is the campaignctl binary under test, built once by TestMain: the
// tests drive it as operators and scripts do, exit codes and all.
var bin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "campaignctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "campaignctl")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build campaignctl: %v\n%s", err, out)
		return 2
	}
	return redistest.Main(m)
}

// ctl runs the campaignctl binary against the test's Redis under prefix.
func ctl(t *testing.T, prefix string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return ctlEnv(t, nil, append([]string{"-redis", redistest.URL(), "-prefix", prefix}, args...)...)
}

// ctlEnv runs the campaignctl binary with args as given, and env added to
// an environment that names no Redis.
func ctlEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// A -race binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), "REDIS_URL=", "REDIS_CLUSTER=", "REDIS_PASSWORD=", "SLUICE_UNSUBSCRIBE_SECRET=", "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run campaignctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustCtl runs campaignctl and fails the test unless it exits 0.
func mustCtl(t *testing.T, prefix string, args ...string) string {
	t.Helper()
	out, stderr, code := ctl(t, prefix, args...)
	if code != 0 {
		t.Fatalf("campaignctl %v: exit %d\n%s%s", args, code, out, stderr)
	}
	return out
}

// status is `status ID --json`.
func status(t *testing.T, prefix, id string) store.Status {
	t.Helper()
	var st store.Status
	out := mustCtl(t, prefix, "status", id, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// waitStatus polls status until ok or the timeout.
func waitStatus(t *testing.T, prefix, id string, timeout time.Duration, ok func(store.Status) bool) store.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := status(t, prefix, id)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s after %s: %+v", id, timeout, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func finished(st store.Status) bool { return st.State == store.StateFinished }

// startEngine runs an in-process engine delivering everything to addr,
// at most rate messages a second when rate > 0.
func startEngine(t *testing.T, prefix, addr string, rate float64) {
	t.Helper()
	cfg := enginetest.Config(prefix, addr)
	if rate > 0 {
		cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = rate, rate, 1
	}
	enginetest.Start(t, cfg)
}

func waitCount(t *testing.T, srv *smtptest.Server, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for srv.Count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d messages after %s, waited for %d", srv.Count(), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eachOnce fails unless the receiver got exactly one message for each of
// the n recipients user00000... of a enginetest.Campaign.
func eachOnce(t *testing.T, srv *smtptest.Server, n int, domain string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range srv.Messages() {
		for _, to := range m.To {
			seen[to]++
		}
	}
	for i := 0; i < n; i++ {
		to := fmt.Sprintf("user%05d@%s", i, domain)
		if seen[to] != 1 {
			t.Errorf("%s received %d messages, want 1", to, seen[to])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct recipients received mail, want %d", len(seen), n)
	}
}
