package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
)

// showRecipient is status ID --recipient ADDR: the recipient's record and
// its attempt history, as report --json has it.
func showRecipient(ctx context.Context, e *env, pos []string, addr string, asJSON bool) error {
	if len(pos) != 1 {
		return fmt.Errorf("--recipient needs a campaign ID: %w", errUsage)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	st := store.New(rdb, ks)
	if _, err := st.State(ctx, pos[0]); err != nil {
		return noCampaign(err, pos[0])
	}
	rec, err := st.Record(ctx, pos[0], addr)
	if err != nil {
		return fmt.Errorf("%s is not a recipient of %s: %w", addr, pos[0], err)
	}
	row := report.FromRecord(addr, rec)
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			report.Row
			Provider string `json:"provider,omitempty"`
		}{row, row.Provider()})
	}
	fmt.Fprintf(e.stdout, "%s in %s: %s", addr, pos[0], row.Outcome)
	if row.Reason != "" {
		fmt.Fprintf(e.stdout, " (%s)", row.Reason)
	}
	fmt.Fprintf(e.stdout, ", %d attempt(s)\n", row.Attempts)
	if len(row.History) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tOUTCOME\tSOURCE\tMX\tCODE\tREPLY")
	for _, a := range row.History {
		code := ""
		if a.Code != 0 {
			code = fmt.Sprintf("%d %s", a.Code, a.Enhanced)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.At.Format(time.RFC3339), a.Outcome, dash(a.Source), dash(a.MX), dash(code), a.Reply)
	}
	return tw.Flush()
}
