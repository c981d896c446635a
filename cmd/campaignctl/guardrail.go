package main

import (
	"errors"
	"fmt"
	"io"

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
