package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestEventsListsACampaignsStateChanges(t *testing.T) {
	t.Parallel()
	const n = 20
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "ev", n, "example.test")
	if out, stderr, code := ctl(t, prefix, "launch", path); code != 0 {
		t.Fatalf("launch exit %d: %s%s", code, out, stderr)
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	enginetest.WaitFinished(t, store.New(redistest.Client(t), keyspace.Space(prefix)), "ev", 30*time.Second)

	out, stderr, code := ctl(t, prefix, "events", "--json", "--campaign", "ev")
	if code != 0 {
		t.Fatalf("events exit %d: %s", code, stderr)
	}
	count := map[events.Type]int{}
	ids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev events.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		count[ev.Type]++
		ids[ev.ID] = true
	}
	if count[events.Queued] != n || count[events.Delivered] != n || len(ids) != 2*n {
		t.Fatalf("events %v (%d ids), want %d queued and delivered", count, len(ids), n)
	}
	out, _, _ = ctl(t, prefix, "events", "--type", "delivered", "--since", "1m")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != n || !strings.Contains(lines[0], "  delivered  ev  ev/") {
		t.Fatalf("--type delivered printed %d lines:\n%s", len(lines), out)
	}
	if _, stderr, code := ctl(t, prefix, "events", "--type", "sent"); code != 2 || !strings.Contains(stderr, "unknown event type") {
		t.Fatalf("--type sent: exit %d %s", code, stderr)
	}

	// --follow prints what comes after it started.
	done := make(chan string)
	go func() {
		o, _, _ := ctlTimeout(t, prefix, 3*time.Second, "events", "--follow")
		done <- o
	}()
	time.Sleep(1 * time.Second)
	if _, err := events.New(redistest.Client(t), keyspace.Space(prefix)).Append(t.Context(), events.Event{Type: events.Paused, Campaign: "ev"}); err != nil {
		t.Fatal(err)
	}
	if o := <-done; !strings.Contains(o, "  paused  ev  -") || strings.Contains(o, "delivered") {
		t.Fatalf("--follow printed:\n%s", o)
	}
}

// ctlTimeout runs campaignctl like ctl and interrupts it (SIGINT) after d.
func ctlTimeout(t *testing.T, prefix string, d time.Duration, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-redis", redistest.URL(), "-prefix", prefix}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.Env = append(os.Environ(), "REDIS_URL=", "GORACE=atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}
