package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
)

// listed is one campaign in campaignctl list: its status and when it was
// created, launched and is to be sent.
type listed struct {
	store.Status
	Lane     string     `json:"lane"`
	Created  *time.Time `json:"created,omitempty"`
	Launched *time.Time `json:"launched,omitempty"`
	SendAt   *time.Time `json:"send_at,omitempty"`
	guardrailRates
}

func cmdList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "list", "[flags]",
		"Lists every campaign, oldest first: state, lane, when it was created and is to be sent, how\n"+
			"far it is (share of recipients with a final outcome), and its complaint and bounce rates (of\n"+
			"delivered, as the guardrails judge them). Below the table, why a guardrail paused a campaign.",
		"campaignctl list --json")
	asJSON := fs.Bool("json", false, "print a JSON array")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("list takes no arguments: %w", errUsage)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	st := store.New(rdb, ks)
	all, err := st.List(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, len(all))
	for i, s := range all {
		ids[i] = s.ID
	}
	metas, err := st.Metas(ctx, ids...)
	if err != nil {
		return err
	}
	out := make([]listed, len(all))
	for i, s := range all {
		m := metas[i]
		out[i] = listed{Status: s, Lane: m.Lane, Created: timePtr(m.Created), Launched: timePtr(m.Launched), SendAt: timePtr(m.SendAt),
			guardrailRates: ratesOf(s)}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tLANE\tCREATED\tSEND AT\tTOTAL\tDONE\tCOMPLAINTS\tBOUNCES")
	for _, c := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.ID, c.State, c.Lane, when(c.Created), when(c.SendAt),
			c.Total, percent(c.Total-c.Queued, c.Total), ratePct(c.Status, c.ComplaintRate), ratePct(c.Status, c.BounceRate))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range out {
		if c.PauseReason != "" {
			fmt.Fprintf(e.stdout, "%s paused by a guardrail: %s\n", c.ID, c.PauseReason)
		}
	}
	return nil
}

// timePtr is t, or nil when zero (omitted from JSON).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
