package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// reportRows runs `report ID` and returns its rows keyed by column.
func reportRows(t *testing.T, prefix, id string) []map[string]string {
	t.Helper()
	return parseReport(t, mustCtl(t, prefix, "report", id))
}

func parseReport(t *testing.T, data string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("report is not CSV: %v\n%s", err, data)
	}
	if len(recs) == 0 || !slices.Equal(recs[0], report.Columns) {
		t.Fatalf("report header %v, want %v", recs[:min(1, len(recs))], report.Columns)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, c := range report.Columns {
			row[c] = rec[i]
		}
		rows = append(rows, row)
	}
	return rows
}

func TestReportListsEveryRecipientAndMatchesStatus(t *testing.T) {
	t.Parallel()
	const n = 60
	// Every tenth recipient's mailbox does not exist.
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		var i int
		if _, err := fmt.Sscanf(to, "user%05d@", &i); err == nil && i%10 == 7 {
			return smtptest.Reply(550, "5.1.1", "no such user here")
		}
		return nil
	}})
	prefix := redistest.Prefix(t)
	path := enginetest.Campaign(t, t.TempDir(), "rep", n, "example.test")
	mustCtl(t, prefix, "suppression", "add", "user00001@example.test", "--reason", "manual")
	mustCtl(t, prefix, "launch", path)
	startEngine(t, prefix, srv.Addr, 0)
	st := waitStatus(t, prefix, "rep", 20*time.Second, finished)
	if st.Delivered != 53 || st.Bounced != 6 || st.Suppressed != 1 {
		t.Fatalf("status %+v; want 53 delivered, 6 bounced, 1 suppressed", st)
	}

	out := mustCtl(t, prefix, "report", "rep")
	rows := parseReport(t, out)
	count := map[string]int64{}
	seen := map[string]bool{}
	for _, r := range rows {
		count[r["outcome"]]++
		if seen[r["email"]] {
			t.Errorf("%s listed twice", r["email"])
		}
		seen[r["email"]] = true
	}
	for i := 0; i < n; i++ {
		if to := fmt.Sprintf("user%05d@example.test", i); !seen[to] {
			t.Errorf("%s missing from the report", to)
		}
	}
	if int64(len(rows)) != st.Total || count["delivered"] != st.Delivered || count["bounced"] != st.Bounced ||
		count["suppressed"] != st.Suppressed || count["failed"] != st.Failed {
		t.Fatalf("report counts %v (%d rows) differ from status %+v", count, len(rows), st)
	}
	for _, r := range rows {
		switch r["email"] {
		case "user00007@example.test":
			if r["outcome"] != "bounced" || r["code"] != "550" || r["enhanced_code"] != "5.1.1" ||
				!strings.Contains(r["reply"], "no such user here") || r["attempts"] != "1" || r["line"] != "9" {
				t.Errorf("bounced row %v", r)
			}
			if _, err := time.Parse(time.RFC3339, r["last_attempt"]); err != nil || r["provider"] == "" {
				t.Errorf("bounced row %v: last_attempt or provider", r)
			}
		case "user00001@example.test":
			if r["outcome"] != "suppressed" || r["reply"] != "suppressed" || r["provider"] != "example.test" {
				t.Errorf("suppressed row %v", r)
			}
		case "user00002@example.test":
			if r["outcome"] != "delivered" || !strings.HasPrefix(r["code"], "2") {
				t.Errorf("delivered row %v", r)
			}
		}
	}

	// -o writes the same report to a file; --outcome and --json filter
	// and reformat it.
	file := filepath.Join(t.TempDir(), "rep.csv")
	_, stderr, code := ctl(t, prefix, "report", "rep", "-o", file)
	if code != 0 || !strings.Contains(stderr, "wrote 60 recipients") {
		t.Fatalf("report -o: exit %d %q", code, stderr)
	}
	if data, err := os.ReadFile(file); err != nil || len(parseReport(t, string(data))) != n {
		t.Fatalf("report file: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(mustCtl(t, prefix, "report", "rep", "--json", "--outcome", "bounced")), "\n")
	var first report.Row
	if len(lines) != 6 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Outcome != "bounced" || first.Code != 550 {
		t.Fatalf("report --json --outcome bounced: %q", lines)
	}
	// One name for one thing: CSV's provider column is JSON's provider key.
	var keys map[string]any
	if json.Unmarshal([]byte(lines[0]), &keys) != nil || keys["provider"] == nil || keys["mx_host"] != nil {
		t.Fatalf("report --json line %s: want provider, not mx_host", lines[0])
	}

	// The human status view breaks the campaign down by provider; --json
	// --detail carries the same.
	human := mustCtl(t, prefix, "status", "rep")
	if !strings.Contains(human, "100.0%") || !strings.Contains(human, "example.test") || !strings.Contains(human, "bounced 6") {
		t.Errorf("status view:\n%s", human)
	}
	var d struct {
		ID        string          `json:"id"`
		Delivered int64           `json:"delivered"`
		Providers []report.Counts `json:"providers"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, prefix, "status", "rep", "--json", "--detail")), &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != "rep" || len(d.Providers) != 1 || d.Providers[0].Name != "example.test" || d.Providers[0].Bounced != 6 || d.Providers[0].Delivered != d.Delivered {
		t.Errorf("status --detail %+v", d)
	}
}
