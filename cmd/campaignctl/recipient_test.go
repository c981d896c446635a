package main

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestStatusRecipientShowsEveryAttempt(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	var mu sync.Mutex
	tries := 0
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		if !strings.HasPrefix(to, "user00001@") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if tries++; tries <= 2 {
			return smtptest.Reply(452, "4.2.2", "mailbox full, try later")
		}
		return nil
	}})
	path := enginetest.Campaign(t, t.TempDir(), "hist", 3, "example.test")
	mustCtl(t, prefix, "launch", path)
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Lanes.Marketing.Retry = []time.Duration{200 * time.Millisecond}
	enginetest.Start(t, cfg)
	waitStatus(t, prefix, "hist", 20*time.Second, finished)

	out := mustCtl(t, prefix, "status", "hist", "--recipient", "USER00001@example.test")
	if !strings.Contains(out, "delivered, 3 attempt(s)") || strings.Count(out, "452 4.2.2") != 2 || strings.Count(out, "mailbox full") != 2 {
		t.Fatalf("status --recipient:\n%s", out)
	}
	var row report.Row
	if err := json.Unmarshal([]byte(mustCtl(t, prefix, "status", "hist", "--recipient", "user00001@example.test", "--json")), &row); err != nil {
		t.Fatal(err)
	}
	if len(row.History) != 3 || row.History[0].Code != 452 || row.History[2].Outcome != "delivered" || row.History[2].Code != 250 {
		t.Fatalf("history %+v", row.History)
	}
	// report --json carries the same history.
	found := false
	for _, line := range strings.Split(strings.TrimSpace(mustCtl(t, prefix, "report", "hist", "--json")), "\n") {
		var r report.Row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Email == "user00001@example.test" {
			found = len(r.History) == 3 && r.History[1].Enhanced == "4.2.2"
		} else if len(r.History) != 1 {
			t.Errorf("%s: history %+v, want its one attempt", r.Email, r.History)
		}
	}
	if !found {
		t.Error("report --json lacks the deferred recipient's history")
	}
	if _, stderr, code := ctl(t, prefix, "status", "--recipient", "a@b.test"); code != 2 {
		t.Errorf("--recipient without ID: exit %d %s", code, stderr)
	}
}
