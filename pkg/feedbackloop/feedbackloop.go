// Package feedbackloop applies what comes back after delivery — an
// asynchronous bounce or a feedback-loop complaint, read and classified by
// pkg/inbound — to the recipient's record and counters, the suppression
// list, and the campaign's guardrails.
//
// A hard bounce turns a delivered recipient into a bounced one (delivered
// −1, bounced +1, in one atomic step with the record) and suppresses the
// address with the reported code; a complaint suppresses the address
// (reason complaint), marks the record and counts for the campaign and
// its sending domain; a soft bounce counts toward the soft-bounce limit.
// Bounces about the sender (Reason.SenderSide) change nothing, as at SMTP
// time. After each change the campaign's complaint and bounce rates are
// judged against the guardrails, which pause it when they are crossed.
//
// The job is found by the job id the report carries: its VERP address,
// or else the original Message-ID quoted, which for a campaign message
// encodes the job (verp.MessageID); a transactional message keeps its
// client's Message-ID, which the index written at enqueue maps to its
// jobs (verp.Find). A report naming no known job still suppresses the
// address, but no record or counter can be amended.
package feedbackloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/feedback"
	"github.com/sluice-mta/sluice/pkg/inbound"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/text"
	"github.com/sluice-mta/sluice/pkg/verp"
	"github.com/sluice-mta/sluice/pkg/warmup"
)

// Source names this package in suppression entries and their audit trail.
const Source = "feedback"

// ComplaintReason is the Reason a complained-about recipient's record
// gets (its status stays delivered).
const ComplaintReason = "complaint"

// Domain counter fields (DomainKey).
const (
	DomainComplaints = "complaints"
	DomainBounces    = "bounces"
)

// Loop applies reports. It is safe for concurrent use.
type Loop struct {
	rdb   redis.UniversalClient
	ks    keyspace.Space
	q     *streams.Queue
	st    *store.Store
	supp  *suppression.List
	guard config.Guardrails
	soft  suppression.SoftLimit
	warm  *warmup.Warmup
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	camps  map[string]campInfo
	warned map[string]bool
	// doms are the sending domains' totals of the last judgement, moved
	// by each applied report; warnedDom the domains warned about.
	doms      map[string]DomainTotals
	warnedDom map[string]bool
}

type campInfo struct{ lane, domain string }

// New returns a loop over the deployment in ks; guard are the
// guardrails, soft the soft-bounce limit (the engine's suppression
// section).
func New(rdb redis.UniversalClient, ks keyspace.Space, supp *suppression.List, guard config.Guardrails, soft suppression.SoftLimit, log *slog.Logger) *Loop {
	if log == nil {
		log = slog.Default()
	}
	return &Loop{rdb: rdb, ks: ks, q: streams.New(rdb, ks, "feedback"), st: store.New(rdb, ks), supp: supp,
		guard: guard, soft: soft, warm: warmup.New(rdb, ks, nil), log: log, now: time.Now,
		camps: map[string]campInfo{}, warned: map[string]bool{}}
}

// WithWarmup gives the loop the warm-up plans of the engine's sources
// (warmup.Plans): a complaint or hard bounce about mail a ramping source
// sent then counts toward that day's health of the source and provider.
// Every source's totals are counted with or without it.
func (l *Loop) WithWarmup(plans map[string]warmup.Plan) *Loop {
	l.warm = warmup.New(l.rdb, l.ks, plans)
	return l
}

// DomainKey is the hash counting complaints and bounces per sending
// (From) domain, across campaigns: {prefix~fb:DOMAIN}, a hash tag of its
// own, so sending domains spread over a cluster.
func (l *Loop) DomainKey(domain string) string {
	return l.ks.Own("fb:" + strings.ToLower(domain))
}

// countDomain adds one to j's sending domain's field (DomainBounces or
// DomainComplaints) once the amendment it follows was stored. It is a
// command apart from the amendment (the record is in its recipient's
// shard), so a crash or an error between the two leaves the domain one
// short (the report applied again changes nothing, and counts nothing).
func (l *Loop) countDomain(ctx context.Context, j *job, field string) error {
	if j.domain == "" {
		return nil
	}
	if err := l.rdb.HIncrBy(ctx, l.DomainKey(j.domain), field, 1).Err(); err != nil {
		return fmt.Errorf("feedback: count %s of %s: %w", field, j.domain, err)
	}
	return nil
}

// job is where a report's job keeps its record.
type job struct {
	id       string
	campaign string // "" for transactional mail
	tally    streams.Tally
	lane     string
	domain   string
}

// Handle applies one report; it is an inbound.Handler. An error means
// nothing durable may be assumed: the sender is told to try again later,
// and applying the report again changes nothing twice.
func (l *Loop) Handle(ctx context.Context, r inbound.Report) error {
	j, err := l.find(ctx, r.JobID)
	if err != nil {
		return err
	}
	if j == nil && r.JobID != "" {
		l.log.Info("feedback: report names an unknown job; only the address is suppressed", "job", r.JobID, "format", r.Format)
	}
	var sentAs []verp.Ref
	if j == nil && r.JobID == "" && r.Original.MessageID != "" {
		if sentAs, err = verp.Find(ctx, l.rdb, l.ks, r.Original.MessageID, l.now()); err != nil {
			return fmt.Errorf("feedback: %w", err)
		}
	}
	for _, rc := range r.Recipients {
		jj := j
		if jj == nil && len(sentAs) > 0 {
			jj = l.byMessageID(r, rc, sentAs)
		}
		if err := l.apply(ctx, r, jj, rc); err != nil {
			return err
		}
	}
	return nil
}

// byMessageID is the transactional job, among those sent as the
// report's original Message-ID (verp.Find), that rc is about: the one
// sent to its address (or Original-Recipient, or the quoted To), else
// the only one. nil when that does not decide.
func (l *Loop) byMessageID(r inbound.Report, rc feedback.Recipient, sentAs []verp.Ref) *job {
	cands := []string{rc.Address, rc.Original}
	if a, err := mail.ParseAddress(r.Original.To); err == nil {
		cands = append(cands, a.Address)
	}
	for _, c := range cands {
		for _, ref := range sentAs {
			if c != "" && strings.EqualFold(c, ref.To) {
				return l.txJob(ref.ID)
			}
		}
	}
	if len(sentAs) == 1 {
		return l.txJob(sentAs[0].ID)
	}
	return nil
}

// txJob is the transactional job id.
func (l *Loop) txJob(id string) *job {
	return &job{id: id, tally: intake.Tally(l.ks, id), lane: suppression.LaneTransactional}
}

// find resolves a job id: "campaign/line" for campaign jobs, a dated id
// for transactional ones. Unknown campaigns give nil.
func (l *Loop) find(ctx context.Context, id string) (*job, error) {
	if id == "" {
		return nil, nil
	}
	c, line, ok := strings.Cut(id, "/")
	if !ok {
		return l.txJob(id), nil
	}
	if _, err := strconv.Atoi(line); err != nil {
		return nil, nil
	}
	info, err := l.campaign(ctx, c)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &job{id: id, campaign: c, tally: l.st.Tally(c), lane: info.lane, domain: info.domain}, nil
}

// campaign returns a campaign's lane and sending domain, read once.
func (l *Loop) campaign(ctx context.Context, id string) (campInfo, error) {
	l.mu.Lock()
	info, ok := l.camps[id]
	l.mu.Unlock()
	if ok {
		return info, nil
	}
	info, err := readInfo(ctx, l.st, id)
	if err != nil {
		return info, err
	}
	l.mu.Lock()
	l.camps[id] = info
	l.mu.Unlock()
	return info, nil
}

// readInfo reads a campaign's lane and sending (From) domain, lowercased,
// from its stored definition.
func readInfo(ctx context.Context, st *store.Store, id string) (campInfo, error) {
	var info campInfo
	raw, err := st.Spec(ctx, id)
	if err != nil {
		return info, err
	}
	var spec campaign.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return info, fmt.Errorf("feedback: campaign %s: decode stored definition: %w", id, err)
	}
	info.lane = spec.Lane
	if info.lane == "" {
		info.lane = suppression.LaneMarketing
	}
	if a, err := mail.ParseAddress(spec.From); err == nil {
		info.domain = strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
	}
	return info, nil
}

var enhancedRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// apply applies what the report says about one recipient.
func (l *Loop) apply(ctx context.Context, r inbound.Report, j *job, rc feedback.Recipient) error {
	attrs := []any{"job", r.JobID, "rcpt", rc.Address, "kind", rc.Kind, "reason", rc.Reason, "status", rc.Status, "ip", r.RemoteIP}
	switch {
	case rc.Kind == feedback.Hard && !rc.Reason.SenderSide():
	case rc.Kind == feedback.Complaint:
	case rc.Kind == feedback.Soft && !rc.Reason.SenderSide():
		return l.soft1(ctx, r, j, rc, attrs)
	default: // sender-side, auto-replies, not understood: nothing about the address
		l.log.Debug("feedback: nothing to apply", attrs...)
		return nil
	}
	field := l.field(ctx, r, j, rc)
	addr := field
	if j == nil || j.campaign == "" {
		addr = rc.Address
	}
	if addr == "" {
		l.log.Info("feedback: report names no recipient address; nothing applied", attrs...)
		return nil
	}
	entry := entryFor(j, rc)
	entry.Address = addr
	hard := rc.Kind == feedback.Hard
	if hard {
		entry.Reason = suppression.HardBounce
	} else {
		entry.Reason = suppression.Complaint
		if entry.Detail == "" {
			entry.Detail = "feedback-loop complaint"
			if rc.FeedbackType != "" {
				entry.Detail += " (" + rc.FeedbackType + ")"
			}
		}
	}
	// As at settle: the suppression first, so a crash before the record
	// is amended repeats both.
	if err := l.supp.Add(ctx, entry); err != nil {
		if errors.Is(err, suppression.ErrInvalidEntry) {
			l.log.Warn("feedback: cannot suppress the reported address", append(attrs, "err", err)...)
			return nil
		}
		return fmt.Errorf("feedback: %w", err)
	}
	if j == nil || field == "" {
		l.log.Info("feedback: address suppressed; no record to amend", attrs...)
		return nil
	}
	changed, counts, sent, err := l.amend(ctx, j, field, rc, hard)
	if errors.Is(err, streams.ErrNoRecord) {
		l.log.Info("feedback: address suppressed; its job has no record", attrs...)
		return nil
	}
	if err != nil {
		return fmt.Errorf("feedback: %w", err)
	}
	l.log.Info("feedback: applied", append(attrs, "amended", changed)...)
	if changed {
		field := DomainComplaints
		if hard {
			field = DomainBounces
		}
		if err := l.countDomain(ctx, j, field); err != nil {
			l.log.Warn("feedback: sending domain not counted", append(attrs, "err", err)...)
		}
		l.countSource(ctx, sent, hard, attrs)
	}
	if changed && j.campaign != "" {
		err := l.judge(ctx, j.campaign, counts[0], counts[1], counts[2])
		return errors.Join(err, l.domainReported(ctx, j.domain, hard))
	}
	return nil
}

// field is the record field of the recipient in j's tally: the job id for
// transactional mail; for a campaign the address it was sent to, which is
// the reported address, or its Original-Recipient, or the quoted To — the
// first whose record belongs to the job.
func (l *Loop) field(ctx context.Context, r inbound.Report, j *job, rc feedback.Recipient) string {
	if j == nil {
		return ""
	}
	if j.campaign == "" {
		return j.id
	}
	cands := []string{rc.Address, rc.Original}
	if a, err := mail.ParseAddress(r.Original.To); err == nil {
		cands = append(cands, a.Address)
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		rec, err := l.st.Record(ctx, j.campaign, c)
		if err == nil && rec.JobID == j.id {
			return strings.ToLower(c)
		}
	}
	return ""
}

// amend changes the record: delivered → bounced for a hard bounce, the
// complaint mark for a complaint, moving the counters in the same step.
// It returns the campaign's delivered, bounced and complaints after.
// It also returns the record as it was before the change (its source
// and provider: whose reputation the report is about).
func (l *Loop) amend(ctx context.Context, j *job, field string, rc feedback.Recipient, hard bool) (bool, []int64, streams.Record, error) {
	read := []string{string(outcome.Delivered), string(outcome.Bounced), store.Complaints}
	now := l.now()
	var was streams.Record
	changed, counts, err := l.q.Amend(ctx, j.tally, field, read, func(rec streams.Record) *streams.Amendment {
		was = rec
		if rec.Status != string(outcome.Delivered) {
			return nil // not delivered (yet), or bounced already
		}
		var in []streams.Incr
		if hard {
			rec.Status, rec.Code, rec.Enhanced, rec.Reply, rec.Reason = string(outcome.Bounced), rc.Code, rc.Status, rc.Text, string(rc.Reason)
			rec.At = now.UnixMilli()
			if rc.RemoteMTA != "" {
				rec.Host = rc.RemoteMTA
			}
			in = []streams.Incr{{Field: string(outcome.Delivered), By: -1}, {Field: string(outcome.Bounced), By: 1}}
		} else {
			if rec.Reason == ComplaintReason {
				return nil // counted already
			}
			rec.Reason = ComplaintReason
			if j.campaign != "" {
				in = append(in, streams.Incr{Field: store.Complaints, By: 1})
			}
		}
		ev := events.Complained
		if hard {
			ev = events.Bounced
		}
		to := rc.Address
		if to == "" {
			to = field
		}
		return &streams.Amendment{Record: rec, Incrs: in, Event: &events.Event{
			Type: ev, Time: now, Campaign: j.campaign, Job: j.id, Recipient: to, Code: rec.Code, Enhanced: rec.Enhanced,
			Reply: text.Clip(rec.Reply, events.ReplyLimit), MX: rec.Host, Attempt: rec.Attempts, Reason: rec.Reason,
		}}
	})
	return changed, counts, was, err
}

// countSource counts an applied complaint or hard bounce against the
// egress source the recipient's mail left from (the record's src) and
// its provider (the line's throttle key, pv): its totals, and a ramping
// source's warm-up health (warmup.Complaint, warmup.Bounced). Like the
// domain's count it follows the amendment, so a crash in between leaves
// it one short.
func (l *Loop) countSource(ctx context.Context, sent streams.Record, hard bool, attrs []any) {
	count := l.warm.Complaint
	if hard {
		count = l.warm.Bounced
	}
	if err := count(ctx, sent.Src, sent.Prov, l.now()); err != nil {
		l.log.Warn("feedback: source not counted", append(attrs, "source", sent.Src, "err", err)...)
	}
}

// soft1 counts a soft bounce toward the address's soft-bounce limit, as
// the engine does for a full mailbox at SMTP time. Soft bounces about the
// message itself (too big, content) say nothing about the address.
func (l *Loop) soft1(ctx context.Context, r inbound.Report, j *job, rc feedback.Recipient, attrs []any) error {
	if rc.Reason == feedback.TooBig || rc.Reason == feedback.Content || rc.Address == "" || l.soft.Count < 1 {
		l.log.Debug("feedback: soft bounce not counted", attrs...)
		return nil
	}
	done, err := l.supp.NoteSoftBounce(ctx, rc.Address, entryFor(j, rc), l.now(), l.soft)
	if err != nil {
		if errors.Is(err, suppression.ErrInvalidEntry) {
			l.log.Warn("feedback: soft bounce not counted", append(attrs, "err", err)...)
			return nil
		}
		return fmt.Errorf("feedback: %w", err)
	}
	l.log.Info("feedback: soft bounce counted", append(attrs, "suppressed", done)...)
	return nil
}

// entryFor is the suppression entry a report about rc makes: its reply
// code and status (when well-formed), text, and job's campaign and lane.
func entryFor(j *job, rc feedback.Recipient) suppression.Entry {
	e := suppression.Entry{Code: rc.Code, Detail: rc.Text, Source: Source}
	if enhancedRE.MatchString(rc.Status) {
		e.Enhanced = rc.Status
	}
	if e.Code != 0 && (e.Code < 200 || e.Code > 599) {
		e.Code = 0
	}
	if j != nil {
		e.Campaign, e.Lane = j.campaign, j.lane
	}
	return e
}
