package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestListAndDelete(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	startEngine(t, prefix, srv.Addr, 0)
	dir := t.TempDir()
	mustCtl(t, prefix, "launch", enginetest.Campaign(t, dir, "old", 10, "example.test"))
	waitStatus(t, prefix, "old", 10*time.Second, finished)
	mustCtl(t, prefix, "launch", enginetest.Campaign(t, dir, "later", 10, "example.test"), "--at", "+1h")

	var list []struct {
		store.Status
		Lane   string     `json:"lane"`
		SendAt *time.Time `json:"send_at"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, prefix, "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "old" || list[0].State != store.StateFinished || list[1].ID != "later" ||
		list[1].State != store.StateScheduled || list[1].Lane != "marketing" || list[1].SendAt == nil || time.Until(*list[1].SendAt) < 59*time.Minute {
		t.Fatalf("list --json: %+v", list)
	}
	if out := mustCtl(t, prefix, "list"); !strings.Contains(out, "later") || !strings.Contains(out, "100%") {
		t.Fatalf("list:\n%s", out)
	}

	// A campaign not yet finished is refused without --force.
	if _, stderr, code := ctl(t, prefix, "delete", "later"); code != 1 || !strings.Contains(stderr, "cancel it first") {
		t.Fatalf("delete of a scheduled campaign: exit %d %q", code, stderr)
	}

	rdb := redistest.Client(t)
	st := store.New(rdb, keyspace.Space(prefix))
	mustCtl(t, prefix, "suppression", "add", "user00003@example.test", "--reason", "manual")
	if out := mustCtl(t, prefix, "delete", "old"); !strings.Contains(out, "10 recipient records") {
		t.Fatalf("delete said %q", out)
	}
	ctx := context.Background()
	for sh := 0; sh < keyspace.Shards; sh++ {
		tl := st.Tally("old").In(sh)
		if n := rdb.Exists(ctx, keyspace.Space(prefix).Key("campaign", "old"), tl.Records, tl.Counters, st.ParkKey("old", sh)).Val(); n != 0 {
			t.Fatalf("%d of old's keys remain", n)
		}
	}
	if _, stderr, code := ctl(t, prefix, "status", "old"); code != 1 || !strings.Contains(stderr, "no campaign") {
		t.Fatalf("status of a deleted campaign: exit %d %q", code, stderr)
	}
	mustCtl(t, prefix, "suppression", "check", "user00003@example.test") // exit 0: still suppressed

	// --force cancels, brings the scheduled jobs forward so the engine
	// records them as cancelled now, and deletes: nothing is sent.
	if out := mustCtl(t, prefix, "delete", "later", "--force", "--wait", "15s"); !strings.Contains(out, "deleted campaign later") {
		t.Fatalf("delete --force said %q", out)
	}
	if out := mustCtl(t, prefix, "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("list after deleting both: %s", out)
	}
	time.Sleep(time.Second)
	if srv.Count() != 10 {
		t.Fatalf("receiver got %d messages; want only old's 10", srv.Count())
	}
}

// ctlOnTerminal runs campaignctl with stdin and stdout on a terminal
// (util-linux script's pty), answering input.
func ctlOnTerminal(t *testing.T, prefix, input string, args ...string) (string, int) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to run campaignctl on a terminal")
	}
	line := "GORACE=atexit_sleep_ms=0 " + bin + " -redis " + redistest.URL() + " -prefix " + prefix + " " + strings.Join(args, " ")
	cmd := exec.Command(script, "-qec", line, "/dev/null")
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	return string(out), 0
}

// TestDeleteAsksOnATerminal: on a terminal delete asks first; anything but
// y keeps the campaign; --yes does not ask; scripts are never asked
// (TestListAndDelete).
func TestDeleteAsksOnATerminal(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	startEngine(t, prefix, srv.Addr, 0)
	mustCtl(t, prefix, "launch", enginetest.Campaign(t, t.TempDir(), "ask", 3, "example.test"))
	waitStatus(t, prefix, "ask", 10*time.Second, finished)
	out, code := ctlOnTerminal(t, prefix, "n\n", "delete", "ask")
	if code != 1 || !strings.Contains(out, "delete campaign ask (finished, 3 recipients) and every recipient's record? [y/N]") ||
		!strings.Contains(out, "not confirmed; nothing deleted") {
		t.Fatalf("answer n: exit %d\n%s", code, out)
	}
	status(t, prefix, "ask") // still there
	if out, code := ctlOnTerminal(t, prefix, "", "delete", "ask", "--yes"); code != 0 || strings.Contains(out, "[y/N]") || !strings.Contains(out, "deleted campaign ask") {
		t.Fatalf("--yes: exit %d\n%s", code, out)
	}
	if _, _, code := ctl(t, prefix, "status", "ask"); code != 1 {
		t.Fatalf("status after delete: exit %d", code)
	}
}
