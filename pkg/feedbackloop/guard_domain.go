package feedbackloop

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/store"
)

// DomainTotals are a sending (From) domain's counters summed over the
// campaigns the store keeps that send from it, whatever their state:
// campaign mail only (transactional mail has no campaign counters).
type DomainTotals struct {
	Delivered, Bounced, Complaints int64
	Campaigns                      int
}

// Rates are the domain's complaint and bounce rates over delivered.
func (t DomainTotals) Rates() (complaint, bounce float64) {
	return Rates(t.Delivered, t.Bounced, t.Complaints)
}

// sum sums the campaigns' counters.
func sum(camps []store.Status) DomainTotals {
	var t DomainTotals
	for _, s := range camps {
		t.Delivered += s.Delivered
		t.Bounced += s.Bounced
		t.Complaints += s.Complaints
		t.Campaigns++
	}
	return t
}

// guardable says whether a domain's guardrail pauses a campaign in this
// (Status) state: one that sends, or will (scheduled, launching).
func guardable(state string) bool {
	return state == store.StateSending || state == store.StateLaunching || state == store.StateScheduled
}

// byDomain groups the statuses by their campaign's sending domain,
// leaving out campaigns without one (or no longer stored).
func (l *Loop) byDomain(ctx context.Context, list []store.Status) map[string][]store.Status {
	groups, _ := groupByDomain(ctx, list, l.campaign, func(id string, err error) error {
		l.log.Warn("guardrail: sending domain unknown", "campaign", id, "err", err)
		return nil
	})
	return groups
}

// groupByDomain groups list by each campaign's sending domain (read),
// leaving out campaigns without one or no longer stored; another read
// error goes to onErr, which skips the campaign (nil) or stops.
func groupByDomain(ctx context.Context, list []store.Status, read func(context.Context, string) (campInfo, error),
	onErr func(id string, err error) error) (map[string][]store.Status, error) {
	out := map[string][]store.Status{}
	for _, s := range list {
		info, err := read(ctx, s.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			if err := onErr(s.ID, err); err != nil {
				return nil, err
			}
			continue
		}
		if info.domain != "" {
			out[info.domain] = append(out[info.domain], s)
		}
	}
	return out, nil
}

// DomainsOf sums the statuses (store.List: every campaign the store
// keeps) per sending domain, as the domain guardrails judge them, reading
// each campaign's stored definition for its From domain.
func DomainsOf(ctx context.Context, st *store.Store, list []store.Status) (map[string]DomainTotals, error) {
	read := func(ctx context.Context, id string) (campInfo, error) { return readInfo(ctx, st, id) }
	groups, err := groupByDomain(ctx, list, read, func(_ string, err error) error { return err })
	if err != nil {
		return nil, err
	}
	out := make(map[string]DomainTotals, len(groups))
	for d, camps := range groups {
		out[d] = sum(camps)
	}
	return out, nil
}

// judgeDomains judges every sending domain of list (every campaign the
// store keeps) and remembers their totals for domainReported.
func (l *Loop) judgeDomains(ctx context.Context, list []store.Status) {
	groups := l.byDomain(ctx, list)
	totals := make(map[string]DomainTotals, len(groups))
	for d, camps := range groups {
		t := sum(camps)
		totals[d] = t
		if err := l.judgeDomain(ctx, d, t, camps); err != nil {
			l.log.Warn("guardrail", "sending_domain", d, "err", err)
		}
	}
	kept := make(map[string]bool, len(list))
	for _, s := range list {
		kept[s.ID] = true
	}
	l.mu.Lock()
	l.doms = totals
	for id := range l.camps { // forget deleted campaigns
		if !kept[id] {
			delete(l.camps, id)
		}
	}
	l.mu.Unlock()
}

// domainReported judges domain after an applied report (a complaint, or
// a hard bounce when hard) about one of its campaigns. It is cheap while
// nothing is near a threshold: the totals of the last pass (Watch) are
// moved by the report in memory; only when they reach a level, or the
// domain has no totals yet, are its campaigns' counters read again and
// judged.
func (l *Loop) domainReported(ctx context.Context, domain string, hard bool) error {
	if domain == "" {
		return nil
	}
	l.mu.Lock()
	t, ok := l.doms[domain]
	if ok {
		if hard {
			t.Bounced++
			t.Delivered--
		} else {
			t.Complaints++
		}
		l.doms[domain] = t
	}
	l.mu.Unlock()
	if ok && !l.nearLevel(domain, t) {
		return nil
	}
	return l.recheckDomain(ctx, domain)
}

// nearLevel says whether t reaches a level not acted on yet: the warning
// (not given yet for domain) or, past min_delivered, a pause level.
func (l *Loop) nearLevel(domain string, t DomainTotals) bool {
	g := l.guard
	if t.Delivered <= 0 {
		return false
	}
	cr, br := t.Rates()
	if cr >= g.ComplaintWarn && !l.domainWarned(domain, false) {
		return true
	}
	return t.Delivered >= g.MinDelivered && (cr >= g.ComplaintPause || br >= g.BouncePause)
}

// recheckDomain reads the counters of domain's campaigns and judges them.
func (l *Loop) recheckDomain(ctx context.Context, domain string) error {
	ids, err := l.st.IDs(ctx)
	if err != nil {
		return fmt.Errorf("feedback: sending domain %s: %w", domain, err)
	}
	var mine []string
	for _, id := range ids {
		info, err := l.campaign(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("feedback: sending domain %s: %w", domain, err)
		}
		if info.domain == domain {
			mine = append(mine, id)
		}
	}
	camps, err := l.st.Statuses(ctx, mine...)
	if err != nil {
		return fmt.Errorf("feedback: sending domain %s: %w", domain, err)
	}
	t := sum(camps)
	l.mu.Lock()
	if l.doms == nil {
		l.doms = map[string]DomainTotals{}
	}
	l.doms[domain] = t
	l.mu.Unlock()
	return l.judgeDomain(ctx, domain, t, camps)
}

// judgeDomain holds a sending domain's totals against the guardrails: a
// warning once per engine at complaint_warn; past min_delivered, at
// complaint_pause or bounce_pause, every campaign of the domain that
// sends or will (camps) is paused — except those an operator resumed
// with resume --force (their guardrails are off, the domain's too).
func (l *Loop) judgeDomain(ctx context.Context, domain string, t DomainTotals, camps []store.Status) error {
	g := l.guard
	if t.Delivered <= 0 {
		return nil
	}
	cr, br := t.Rates()
	if cr >= g.ComplaintWarn {
		if !l.domainWarned(domain, true) {
			l.log.Warn("guardrail: sending domain's complaint rate above the warning level", "sending_domain", domain,
				"complaint_rate", pct(cr), "complaints", t.Complaints, "delivered", t.Delivered,
				"campaigns", t.Campaigns, "complaint_warn", pct(g.ComplaintWarn))
		}
	}
	if t.Delivered < g.MinDelivered {
		return nil
	}
	var why string
	switch {
	case cr >= g.ComplaintPause:
		why = fmt.Sprintf("sending domain %s: complaint rate %s (%d complaints / %d delivered over %d campaigns) reached guardrails.complaint_pause %s",
			domain, pct(cr), t.Complaints, t.Delivered, t.Campaigns, pct(g.ComplaintPause))
	case br >= g.BouncePause:
		why = fmt.Sprintf("sending domain %s: bounce rate %s (%d bounced / %d delivered over %d campaigns) reached guardrails.bounce_pause %s",
			domain, pct(br), t.Bounced, t.Delivered, t.Campaigns, pct(g.BouncePause))
	default:
		return nil
	}
	var errs []error
	for _, s := range camps {
		if !guardable(s.State) {
			continue
		}
		paused, err := control.PauseFor(ctx, l.rdb, l.ks, s.ID, why)
		if err != nil {
			errs = append(errs, fmt.Errorf("feedback: sending domain %s: %w", domain, err))
			continue
		}
		if paused {
			l.log.Warn("guardrail: campaign paused for its sending domain", "campaign", s.ID, "sending_domain", domain, "why", why)
		}
	}
	return errors.Join(errs...)
}

// domainWarned says whether the warning about domain was given, and
// marks it given when mark.
func (l *Loop) domainWarned(domain string, mark bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.warnedDom[domain]
	if mark {
		if l.warnedDom == nil {
			l.warnedDom = map[string]bool{}
		}
		l.warnedDom[domain] = true
	}
	return was
}
