package feedbackloop

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/store"
)

// Rates are a campaign's complaint and bounce rates over its delivered
// recipients; zero while nothing is delivered.
func Rates(delivered, bounced, complaints int64) (complaint, bounce float64) {
	if delivered <= 0 {
		return 0, 0
	}
	return float64(complaints) / float64(delivered), float64(bounced) / float64(delivered)
}

// judge holds a campaign's counters against the guardrails: a warning
// once per engine when complaints reach complaint_warn; past
// min_delivered, a pause when complaints reach complaint_pause or bounces
// bounce_pause.
func (l *Loop) judge(ctx context.Context, id string, delivered, bounced, complaints int64) error {
	g := l.guard
	cr, br := Rates(delivered, bounced, complaints)
	if cr >= g.ComplaintWarn && delivered > 0 {
		l.mu.Lock()
		first := !l.warned[id]
		l.warned[id] = true
		l.mu.Unlock()
		if first {
			l.log.Warn("guardrail: complaint rate above the warning level", "campaign", id,
				"complaint_rate", pct(cr), "complaints", complaints, "delivered", delivered, "complaint_warn", pct(g.ComplaintWarn))
		}
	}
	if delivered < g.MinDelivered || delivered == 0 {
		return nil
	}
	var why string
	switch {
	case cr >= g.ComplaintPause:
		why = fmt.Sprintf("complaint rate %s (%d complaints / %d delivered) reached guardrails.complaint_pause %s",
			pct(cr), complaints, delivered, pct(g.ComplaintPause))
	case br >= g.BouncePause:
		why = fmt.Sprintf("bounce rate %s (%d bounced / %d delivered) reached guardrails.bounce_pause %s",
			pct(br), bounced, delivered, pct(g.BouncePause))
	default:
		return nil
	}
	paused, err := control.PauseFor(ctx, l.rdb, l.ks, id, why)
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	if paused {
		l.log.Warn("guardrail: campaign paused", "campaign", id, "why", why)
	}
	return nil
}

func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// Watch judges every sending campaign's counters, then every sending
// domain's (summed over the campaigns the store keeps), every interval
// until ctx ends, so bounces at SMTP time (which reach no report) trip
// the bounce guardrails too.
func (l *Loop) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, err := l.st.List(ctx)
		if err != nil {
			l.log.Warn("guardrail: cannot read campaigns", "err", err)
			continue
		}
		for _, s := range list {
			if s.State != store.StateSending && s.State != store.StateLaunching {
				continue
			}
			if err := l.judge(ctx, s.ID, s.Delivered, s.Bounced, s.Complaints); err != nil {
				l.log.Warn("guardrail", "campaign", s.ID, "err", err)
			}
		}
		l.judgeDomains(ctx, list)
	}
}
