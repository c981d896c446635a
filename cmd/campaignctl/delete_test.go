package main

import (
	"context"
	"encoding/json"
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
	if n := rdb.Exists(ctx, keyspace.Space(prefix).Key("campaign", "old"), st.Tally("old").Records, st.ParkKey("old")).Val(); n != 0 {
		t.Fatalf("%d of old's keys remain", n)
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
