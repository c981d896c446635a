// Package warmup paces new egress sources: per source and provider, a
// daily volume cap (and an hourly one) that follows the source's ramp
// and moves up a step only after a healthy day. Its state lives in Redis
// under {prefix}:warm:..., shared by every engine, and is moved by one
// Lua script, so engines never overrun a cap together.
//
// The closed loop: at the first call of a new day (UTC), the last day
// with traffic is judged from the outcomes Record was given for it:
//
//   - no attempts: idle, the ramp holds (a silent day proves nothing);
//   - complaints ÷ delivered above MaxComplaintRate, or a deferral or
//     hard-bounce rate above twice its threshold: back one step;
//   - a deferral rate (pacing deferrals and blocks, see Record) above
//     MaxDeferralRate or a hard-bounce rate above MaxBounceRate: hold;
//   - otherwise healthy: one step up.
//
// The hourly cap is ceil(daily × HourlyBurst ÷ 24): with the default
// burst of 4 a day's cap cannot be spent in less than 6 hours, so a new
// IP's volume reaches each provider spread out rather than in one burst,
// which is what warm-up guidance asks for.
//
// It also keeps every source's running totals, ramping or not (Totals,
// totals.go): delivered, hard-bounced and complained-about mail, the base
// of a source's bounce and complaint rates.
package warmup

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// DefaultSchedule is the shipped ramp, in messages per day to each
// provider from one source: 50 on day 1, then 100, 500, 1,000, 5,000 and
// roughly doubling to a million a day by day 15. It follows the shape of
// the IP warm-up schedules ESPs publish for a new dedicated IP (Twilio
// SendGrid's "IP warmup" guide starts at 50 a day and climbs along these
// figures; Amazon SES's and Mailgun's guidance ramp over a similar two to
// six weeks). sluice applies it per provider rather than to the IP's
// total, since each provider judges the IP on what it receives; a list
// that is mostly one provider sends about the guide's totals.
var DefaultSchedule = []int{50, 100, 500, 1000, 5000, 10000, 20000, 40000, 70000,
	100000, 150000, 250000, 400000, 600000, 1000000}

// Plan is one source's ramp.
type Plan struct {
	// Schedule is the daily cap per provider on day 1, 2, ...; after its
	// last step the source is warm (no cap).
	Schedule []int
	// Thresholds a day must stay below to advance (fractions).
	MaxDeferralRate, MaxBounceRate, MaxComplaintRate float64
	// HourlyBurst: an hour may take daily ÷ 24 × HourlyBurst.
	HourlyBurst float64
}

// PlanFor is the plan of a configured source; ok is false for a source
// without a ramp (no warmup.start), which is warm. An empty schedule
// takes DefaultSchedule. The ramp begins on the first day the source
// sends to a provider (at day 1 however late after start that is: a
// source that never sent is not warm).
func PlanFor(s config.Source) (Plan, bool) {
	w := s.Warmup
	if _, ok := w.StartDate(); !ok {
		return Plan{}, false
	}
	p := Plan{Schedule: w.Schedule, MaxDeferralRate: w.MaxDeferralRate, MaxBounceRate: w.MaxBounceRate,
		MaxComplaintRate: w.MaxComplaintRate, HourlyBurst: w.HourlyBurst}
	if len(p.Schedule) == 0 {
		p.Schedule = DefaultSchedule
	}
	return p, true
}

// Plans are the plans of every configured source that has a ramp.
func Plans(c *config.Config) map[string]Plan {
	out := map[string]Plan{}
	for _, s := range c.Sources {
		if p, ok := PlanFor(s); ok {
			out[s.Name] = p
		}
	}
	return out
}

// dayTTL keeps a day's counters long enough to be judged after a quiet
// spell and shown for a week.
const dayTTL = 8 * 24 * time.Hour

//go:embed allow.lua
var allowLua string

var allowScript = redis.NewScript(allowLua)

// Warmup is the warm-up state of every source with a plan.
type Warmup struct {
	rdb   redis.UniversalClient
	ks    keyspace.Space
	plans map[string]Plan
	seen  sync.Map // "source\x00provider" already added to the source's set by this process
}

// New returns the warm-up of plans (by source name) in rdb under ks.
func New(rdb redis.UniversalClient, ks keyspace.Space, plans map[string]Plan) *Warmup {
	return &Warmup{rdb: rdb, ks: ks, plans: plans}
}

// Ramping reports whether source has a plan (false: it is warm).
func (w *Warmup) Ramping(source string) bool {
	_, ok := w.plans[source]
	return ok
}

// Status is one (source, provider)'s warm-up on a day.
type Status struct {
	Source   string `json:"source"`
	Provider string `json:"provider"`
	// Ramping is false for a source without a plan and once the ramp is
	// over; Cap and HourlyCap are then 0 (no cap).
	Ramping bool `json:"ramping"`
	Day     int  `json:"day"`  // step of the ramp, 1-based; Days+1 once warm
	Days    int  `json:"days"` // steps in the ramp
	Cap     int  `json:"cap"`  // today's daily cap
	Sent    int  `json:"sent"` // units taken today
	// HourlyCap and SentThisHour are the hour's.
	HourlyCap    int `json:"hourly_cap"`
	SentThisHour int `json:"sent_this_hour"`
	// Verdict is the judgement of the last active day before today
	// (healthy, hold, back, idle; "" before any), JudgedDay that day.
	Verdict   string `json:"verdict,omitempty"`
	JudgedDay string `json:"judged_day,omitempty"`
}

// Allow takes one unit of today's cap of source toward provider. When
// none is left it returns false and when to try again: the next hour
// (hourly cap) or the next day (daily cap), UTC. A source without a plan
// is always allowed, without a Redis call.
func (w *Warmup) Allow(ctx context.Context, source, provider string, now time.Time) (ok bool, retryAt time.Time, err error) {
	n, retryAt, err := w.AllowN(ctx, source, provider, 1, now)
	return n == 1, retryAt, err
}

// AllowN takes up to n units at once (an engine leasing a batch) and
// returns how many it got; retryAt is set when it got fewer.
func (w *Warmup) AllowN(ctx context.Context, source, provider string, n int, now time.Time) (granted int, retryAt time.Time, err error) {
	if _, ok := w.plans[source]; !ok || n <= 0 {
		return max(n, 0), time.Time{}, nil
	}
	st, limit, err := w.run(ctx, source, provider, n, now)
	if err != nil {
		return 0, time.Time{}, err
	}
	granted = st.granted
	if granted < n {
		retryAt = retryTime(limit, now)
	}
	return granted, retryAt, nil
}

// Advance judges the last active day if the day has changed and returns
// today's status, taking nothing: what `campaignctl sources` shows. Allow
// does the same on its own, so calling Advance is never required.
func (w *Warmup) Advance(ctx context.Context, source, provider string, now time.Time) (Status, error) {
	if _, ok := w.plans[source]; !ok {
		return Status{Source: source, Provider: provider}, nil
	}
	st, _, err := w.run(ctx, source, provider, 0, now)
	return st.Status, err
}

// retryTime is the start of the next hour or day (UTC) after now.
func retryTime(limit string, now time.Time) time.Time {
	now = now.UTC()
	if limit == "hour" {
		return now.Truncate(time.Hour).Add(time.Hour)
	}
	y, m, d := now.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

type result struct {
	Status
	granted int
}

// run calls the script, correcting the guess of the last active day once.
func (w *Warmup) run(ctx context.Context, source, provider string, n int, now time.Time) (result, string, error) {
	p := w.plans[source]
	now = now.UTC()
	today := now.Format(time.DateOnly)
	tnum := now.Unix() / 86400
	guess := now.AddDate(0, 0, -1).Format(time.DateOnly)
	sched := make([]string, len(p.Schedule))
	for i, v := range p.Schedule {
		sched[i] = strconv.Itoa(v)
	}
	for range 2 {
		gt, err := time.Parse(time.DateOnly, guess)
		if err != nil {
			return result{}, "", fmt.Errorf("warmup: state of %s/%s names day %q: %w", source, provider, guess, err)
		}
		keys := []string{w.stateKey(source, provider), w.dayKey(source, provider, today), w.dayKey(source, provider, guess)}
		args := []any{today, tnum, guess, gt.Unix() / 86400, n, now.Hour(), strings.Join(sched, ","),
			p.MaxDeferralRate, p.MaxBounceRate, p.MaxComplaintRate, p.HourlyBurst, int(dayTTL.Seconds())}
		v, err := allowScript.Run(ctx, w.rdb, keys, args...).Slice()
		if err != nil {
			return result{}, "", fmt.Errorf("warmup: %s/%s: %w", source, provider, err)
		}
		if v[0] == "again" {
			guess, _ = v[1].(string)
			continue
		}
		w.note(ctx, source, provider)
		num := func(i int) int { x, _ := v[i].(int64); return int(x) }
		str := func(i int) string { s, _ := v[i].(string); return s }
		st := Status{Source: source, Provider: provider, Days: len(p.Schedule), Day: num(2) + 1,
			Sent: num(4), SentThisHour: num(6), Verdict: str(8), JudgedDay: str(9)}
		if c := num(3); c >= 0 {
			st.Ramping, st.Cap, st.HourlyCap = true, c, num(5)
		}
		return result{Status: st, granted: num(1)}, str(7), nil
	}
	return result{}, "", errors.New("warmup: the last active day moved twice during one call")
}

// Record counts one attempt's outcome toward today's health figures of
// source and provider: delivered; deferred when the deferral paces
// (provider, IP or sending domain; outcome.Scope.Paces) or is a block of
// our IP or domain (failed with that scope); bounced when the recipient
// bounced. Other deferrals and failures (mailbox full, a host down)
// count as attempts only; an attempt sluice interrupted itself counts
// not at all. A source without a plan records nothing.
func (w *Warmup) Record(ctx context.Context, source, provider string, out outcome.Outcome, now time.Time) error {
	if _, ok := w.plans[source]; !ok {
		return nil
	}
	field := ""
	switch {
	case out.Reason == outcome.Interrupted:
	case out.Status == outcome.Delivered:
		field = "dlv"
	case out.Status == outcome.Deferred && out.Scope.Paces():
		field = "dfr"
	case out.Status == outcome.Failed && (out.Scope == outcome.ScopeIP || out.Scope == outcome.ScopeSendingDomain):
		field = "dfr"
	case out.Status == outcome.Bounced:
		field = "bnc"
	case out.Status == outcome.Deferred || out.Status == outcome.Failed:
		field = "att" // an attempt that says nothing about reputation
	}
	if field == "" {
		return nil
	}
	return w.count(ctx, source, provider, field, now)
}

// Complaint counts a feedback-loop complaint about mail from source to
// provider: into the source's totals (any source), and for a ramping
// source toward today's complaint rate (complaints ÷ delivered).
func (w *Warmup) Complaint(ctx context.Context, source, provider string, now time.Time) error {
	return w.later(ctx, source, provider, now, "cmp", map[string]int64{totComplaints: 1})
}

// Bounced counts a hard bounce that came back by mail after the message
// was delivered from source to provider: in the source's totals the
// recipient moves from delivered to bounced, and for a ramping source it
// counts toward today's hard-bounce rate (the attempt was counted on the
// day it was made).
func (w *Warmup) Bounced(ctx context.Context, source, provider string, now time.Time) error {
	return w.later(ctx, source, provider, now, "bnc", map[string]int64{totDelivered: -1, totBounced: 1})
}

// later counts what came back by mail about an earlier attempt: tot into
// the source's totals, and field into today's figures of a ramping
// source (no attempt counted: it was, when made).
func (w *Warmup) later(ctx context.Context, source, provider string, now time.Time, field string, tot map[string]int64) error {
	if source == "" {
		return nil
	}
	pipe := w.rdb.Pipeline()
	for f, n := range tot {
		pipe.HIncrBy(ctx, totalsKey(w.ks, source), f, n)
	}
	if _, ok := w.plans[source]; ok && provider != "" {
		w.countIn(ctx, pipe, source, provider, field, false, now)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("warmup: count %s of %s/%s: %w", field, source, provider, err)
	}
	return nil
}

func (w *Warmup) count(ctx context.Context, source, provider, field string, now time.Time) error {
	pipe := w.rdb.TxPipeline()
	w.countIn(ctx, pipe, source, provider, field, field != "att", now)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("warmup: record %s/%s: %w", source, provider, err)
	}
	return nil
}

// countIn adds one to field of today's figures in pipe, and one to its
// attempts when attempt is set.
func (w *Warmup) countIn(ctx context.Context, pipe redis.Pipeliner, source, provider, field string, attempt bool, now time.Time) {
	key := w.dayKey(source, provider, now.UTC().Format(time.DateOnly))
	if attempt {
		pipe.HIncrBy(ctx, key, "att", 1)
	}
	pipe.HIncrBy(ctx, key, field, 1)
	pipe.Expire(ctx, key, dayTTL)
}

// Day is one day's health figures of a (source, provider).
type Day struct {
	Attempts, Delivered, Deferred, Bounced, Complaints int
	Verdict                                            string // set once the day was judged
}

// DayFigures returns the figures of source toward provider on day
// (YYYY-MM-DD); counters are kept 8 days.
func (w *Warmup) DayFigures(ctx context.Context, source, provider, day string) (Day, error) {
	v, err := w.rdb.HMGet(ctx, w.dayKey(source, provider, day), "att", "dlv", "dfr", "bnc", "cmp", "verdict").Result()
	if err != nil {
		return Day{}, fmt.Errorf("warmup: %s/%s %s: %w", source, provider, day, err)
	}
	n := func(i int) int { s, _ := v[i].(string); x, _ := strconv.Atoi(s); return x }
	verdict, _ := v[5].(string)
	return Day{Attempts: n(0), Delivered: n(1), Deferred: n(2), Bounced: n(3), Complaints: n(4), Verdict: verdict}, nil
}

// Providers lists the providers source has asked to send to (sorted).
func (w *Warmup) Providers(ctx context.Context, source string) ([]string, error) {
	v, err := w.rdb.SMembers(ctx, w.ks.Key("warm", "src", source)).Result()
	if err != nil {
		return nil, fmt.Errorf("warmup: providers of %s: %w", source, err)
	}
	slices.Sort(v)
	return v, nil
}

// note adds provider to source's set of providers seen, once per process
// (a command apart from the script: the set is in the shared slot). It
// only feeds `campaignctl sources`, so a failure is tried again next time
// rather than failing the units the script granted.
func (w *Warmup) note(ctx context.Context, source, provider string) {
	id := source + "\x00" + provider
	if _, ok := w.seen.Load(id); ok {
		return
	}
	if w.rdb.SAdd(ctx, w.ks.Key("warm", "src", source), provider).Err() == nil {
		w.seen.Store(id, true)
	}
}

// A (source, provider)'s state and day counters share a hash tag of their
// own, so the allow script touches one slot and pairs spread over a
// cluster: {prefix~warm:SOURCE:PROVIDER}:st and ...:day:DAY.
func pairTag(source, provider string) string { return "warm:" + source + ":" + provider }

func (w *Warmup) stateKey(source, provider string) string {
	return w.ks.Own(pairTag(source, provider), "st")
}

func (w *Warmup) dayKey(source, provider, day string) string {
	return w.ks.Own(pairTag(source, provider), "day", day)
}
