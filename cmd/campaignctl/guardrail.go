package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/store"
)

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
