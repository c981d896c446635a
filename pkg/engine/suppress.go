package engine

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
)

// suppressed checks d's recipient just before the attempt: an address
// suppressed after its campaign was launched must not be sent to.
func (e *Engine) suppressed(ctx context.Context, d streams.Delivery) (*suppression.Entry, error) {
	if e.Suppression == nil {
		return nil, nil
	}
	res, err := e.Suppression.Check(ctx, string(d.Lane), []string{d.To})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// engineSource is the Source of the entries the engine writes.
const engineSource = "engine"

// blockedOutcome is the outcome of d, whose recipient entry b blocks:
// suppressed — unless b is d's own hard bounce, written before its
// settle, which a restart or a takeover then cut off (the entry is written
// first, see settleRun). A campaign has one job per recipient, so an
// engine's hard-bounce entry naming d's campaign can only be d's: d ends
// bounced, as its attempt did, with the reply the entry kept, and is not
// attempted again.
func blockedOutcome(d streams.Delivery, b *suppression.Entry) outcome.Outcome {
	if d.Campaign != "" && b.Campaign == d.Campaign && b.Source == engineSource && b.Reason == suppression.HardBounce {
		return outcome.Outcome{Status: outcome.Bounced, Scope: outcome.ScopeRecipient, Stage: outcome.StageQueue,
			Code: b.Code, Enhanced: b.Enhanced, Text: b.Detail, Reason: "bounced_before"}
	}
	return outcome.Outcome{Status: outcome.Suppressed, Stage: outcome.StageQueue,
		Reason: string(b.Reason), Text: "suppressed: " + string(b.Reason) + " " + b.Detail}
}

// recordSuppression adds what an outcome says about the recipient: a hard
// bounce (5.1.x, 5.2.1, NXDOMAIN, null MX — classified recipient or domain
// scope) suppresses it everywhere; a full mailbox counts toward the soft
// bounce limit. Sender-side rejections (5.7.x policy) never suppress, and
// neither does expiry.
func (e *Engine) recordSuppression(ctx context.Context, d streams.Delivery, out outcome.Outcome, expired bool, now time.Time) error {
	if !e.suppresses(out, expired) {
		return nil
	}
	if _, err := suppression.Normalize(d.To); err != nil {
		// Nothing to suppress by; waiting would not change that.
		e.Log.Warn("recipient cannot go on the suppression list", "job", d.ID, "to", d.To, "err", err)
		return nil
	}
	entry := suppression.Entry{
		Address: d.To, Code: out.Code, Enhanced: out.Enhanced, Detail: out.Text,
		Campaign: d.Campaign, Lane: string(d.Lane), Source: engineSource,
	}
	if hardBounce(out) {
		entry.Reason = suppression.HardBounce
		return e.Suppression.Add(ctx, entry)
	}
	entry.Reason = suppression.SoftBounceLimit
	_, err := e.Suppression.NoteSoftBounce(ctx, d.To, entry, now, suppression.SoftLimit{
		Count: e.Config.Suppression.SoftBounceCount, Span: e.Config.Suppression.SoftBounceSpan,
	})
	return err
}

// suppresses says whether recordSuppression has anything to write for
// out: settling asks first, so a delivered message costs no step.
func (e *Engine) suppresses(out outcome.Outcome, expired bool) bool {
	return e.Suppression != nil && !expired && (hardBounce(out) || softBounce(out))
}

func hardBounce(out outcome.Outcome) bool {
	return out.Status == outcome.Bounced && (out.Scope == outcome.ScopeRecipient || out.Scope == outcome.ScopeDomain)
}

func softBounce(out outcome.Outcome) bool {
	return out.Status == outcome.Deferred && out.Scope == outcome.ScopeRecipient && out.Enhanced == "4.2.2"
}
