package engine

import (
	"context"
	"time"

	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
)

// suppressed checks d's recipient just before the attempt: an address
// suppressed after its campaign was launched must not be sent to. ok is
// false when the list could not be read; the job was put back in line.
func (e *Engine) suppressed(ctx context.Context, d streams.Delivery) (*suppression.Entry, bool) {
	if e.Suppression == nil {
		return nil, true
	}
	res, err := e.Suppression.Check(ctx, string(d.Lane), []string{d.To})
	if err != nil {
		if ctx.Err() == nil {
			e.Log.Error("suppression check failed; job postponed", "job", d.ID, "err", err)
			_, _ = e.q.Postpone(context.WithoutCancel(ctx), d, e.Now().Add(paceRetry))
		}
		return nil, false
	}
	return res[0], true
}

// recordSuppression adds what an outcome says about the recipient: a hard
// bounce (5.1.x, 5.2.1, NXDOMAIN, null MX — classified recipient or domain
// scope) suppresses it everywhere; a full mailbox counts toward the soft
// bounce limit. Sender-side rejections (5.7.x policy) never suppress, and
// neither does expiry.
func (e *Engine) recordSuppression(ctx context.Context, d streams.Delivery, out outcome.Outcome, expired bool, now time.Time) error {
	if e.Suppression == nil || expired {
		return nil
	}
	entry := suppression.Entry{
		Address: d.To, Code: out.Code, Enhanced: out.Enhanced, Detail: out.Text,
		Campaign: d.Campaign, Lane: string(d.Lane), Source: "engine",
	}
	switch {
	case out.Status == outcome.Bounced && (out.Scope == outcome.ScopeRecipient || out.Scope == outcome.ScopeDomain):
		entry.Reason = suppression.HardBounce
		return e.Suppression.Add(ctx, entry)
	case out.Status == outcome.Deferred && out.Scope == outcome.ScopeRecipient && out.Enhanced == "4.2.2":
		entry.Reason = suppression.SoftBounceLimit
		_, err := e.Suppression.NoteSoftBounce(ctx, d.To, entry, now, suppression.SoftLimit{
			Count: e.Config.Suppression.SoftBounceCount, Span: e.Config.Suppression.SoftBounceSpan,
		})
		return err
	}
	return nil
}

// unsubscribeFor returns the one-click link and headers for a marketing
// job (RFC 8058 §3.1: List-Unsubscribe with an https URI and
// List-Unsubscribe-Post; both are DKIM-signed with the message).
func (e *Engine) unsubscribeFor(d streams.Delivery) message.Extra {
	if e.Unsubscribe == nil || d.Lane != streams.Marketing || d.Campaign == "" {
		return message.Extra{}
	}
	url := unsubscribe.URL(e.Config.Unsubscribe.BaseURL, e.Unsubscribe.Token(d.To, d.Campaign, suppression.Marketing))
	return message.Extra{
		UnsubscribeURL: url,
		Headers: []message.Header{
			{Name: "List-Unsubscribe", Value: "<" + url + ">"},
			{Name: "List-Unsubscribe-Post", Value: "List-Unsubscribe=One-Click"},
		},
	}
}

// withMailto adds the campaign's mailto (RFC 2369) to List-Unsubscribe.
func withMailto(x message.Extra, mailto string) message.Extra {
	m := "<mailto:" + mailto + "?subject=unsubscribe>"
	for i, h := range x.Headers {
		if h.Name == "List-Unsubscribe" {
			hs := append([]message.Header(nil), x.Headers...)
			hs[i].Value = h.Value + ", " + m
			x.Headers = hs
			return x
		}
	}
	x.Headers = append(append([]message.Header(nil), x.Headers...), message.Header{Name: "List-Unsubscribe", Value: m})
	return x
}
