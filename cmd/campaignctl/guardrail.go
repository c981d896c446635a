package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/store"
)

// guardrailRates are a campaign's complaint and bounce rates as
// fractions of delivered, as the guardrails judge them (in JSON: status
// --detail, list).
type guardrailRates struct {
	ComplaintRate float64 `json:"complaint_rate"`
	BounceRate    float64 `json:"bounce_rate"`
}

func ratesOf(s store.Status) guardrailRates {
	cr, br := feedbackloop.Rates(s.Delivered, s.Bounced, s.Complaints)
	return guardrailRates{ComplaintRate: cr, BounceRate: br}
}

// ratePct is a rate for a table: "-" while nothing is delivered.
func ratePct(s store.Status, r float64) string {
	if s.Delivered <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*r)
}

// printGuardrail writes one campaign's complaint and bounce rates over
// delivered, and why a guardrail paused it, if one did.
func printGuardrail(w io.Writer, s store.Status) {
	cr, br := feedbackloop.Rates(s.Delivered, s.Bounced, s.Complaints)
	fmt.Fprintf(w, "complaints %d (%.2f%% of delivered)  bounce rate %.2f%% of delivered\n", s.Complaints, 100*cr, 100*br)
	if s.PauseReason != "" {
		fmt.Fprintf(w, "paused by a guardrail: %s (campaignctl resume --force %s overrides it)\n", s.PauseReason, s.ID)
	}
}

// guardrailRefusal explains a plain resume of a campaign a guardrail
// paused.
func guardrailRefusal(err error, id string) error {
	if errors.Is(err, store.ErrGuardrail) {
		return fmt.Errorf("%w; look into it first, then campaignctl resume --force %s to resume it and turn its guardrails off", err, id)
	}
	return err
}

// printSendingDomains writes, below the status table, each sending domain's
// counters summed over the listed campaigns and its rates, as the domain
// guardrails judge them.
func printSendingDomains(ctx context.Context, w io.Writer, st *store.Store, list []store.Status) error {
	doms, err := feedbackloop.DomainsOf(ctx, st, list)
	if err != nil || len(doms) == 0 {
		return err
	}
	names := make([]string, 0, len(doms))
	for d := range doms {
		names = append(names, d)
	}
	sort.Strings(names)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SENDING DOMAIN\tCAMPAIGNS\tDELIVERED\tBOUNCED\tCOMPLAINTS\tCOMPLAINT RATE\tBOUNCE RATE\t")
	for _, d := range names {
		t := doms[d]
		cr, br := t.Rates()
		s := store.Status{Delivered: t.Delivered}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", d, t.Campaigns, t.Delivered, t.Bounced, t.Complaints,
			ratePct(s, cr), ratePct(s, br))
	}
	return tw.Flush()
}
