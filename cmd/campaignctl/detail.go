package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// campaignDetail is one campaign's status with what its records tell:
// the recent rate, the time left, and who the recipients are with. In
// JSON (status --detail) it is store.Status's keys plus these.
type campaignDetail struct {
	store.Status
	Lane       string     `json:"lane"`
	SendAt     *time.Time `json:"send_at,omitempty"`
	Rate       float64    `json:"rate"`                  // final outcomes per second, last minute
	ETASeconds *float64   `json:"eta_seconds,omitempty"` // unknown while nothing is moving
	// Delayed counts the campaign's jobs waiting in the delayed set
	// (retries, jobs postponed past a suspension), due by DelayedUntil.
	Delayed      int64      `json:"delayed"`
	DelayedUntil *time.Time `json:"delayed_until,omitempty"`
	guardrailRates
	// Lines are where the campaign's jobs wait, per destination (throttle
	// key), and why.
	Lines     []lineWait      `json:"lines"`
	By        string          `json:"providers_by"`
	Providers []report.Counts `json:"providers"`
}

// loadDetail reads s's campaign fields and scans its records, in batches,
// for the per-provider breakdown and the rate.
func loadDetail(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, st *store.Store, s store.Status, byMX bool, top int) (*campaignDetail, error) {
	d := &campaignDetail{Status: s, By: "domain", guardrailRates: ratesOf(s)}
	m, err := st.Metas(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	d.Lane, d.SendAt = m[0].Lane, timePtr(m[0].SendAt)
	sum := &report.Summary{Now: time.Now()}
	if byMX {
		d.By = "mx"
		sum.By = report.Row.Provider
	}
	if err := report.Scan(ctx, rdb, st.Tally(s.ID), 0, func(r report.Row) error { sum.Add(r); return nil }); err != nil {
		return nil, err
	}
	d.Rate = sum.Rate()
	lane, err := streams.ParseLane(d.Lane)
	if err != nil {
		return nil, err
	}
	var until time.Time
	if d.Delayed, until, err = streams.New(rdb, ks, "").Waiting(ctx, lane, s.ID); err != nil {
		return nil, err
	}
	d.DelayedUntil = timePtr(until)
	if d.Lines, err = linesOf(ctx, rdb, ks, s.ID); err != nil {
		return nil, err
	}
	d.ETASeconds = etaSeconds(s, d.Rate, d.Delayed, until, time.Now())
	// Jobs waiting in a suspended or paced line take at least that long.
	if w := linesWait(d.Lines, time.Now()); w > 0 && sending(s) && (d.ETASeconds == nil || w > *d.ETASeconds) {
		d.ETASeconds = &w
	}
	d.Providers = sum.Top(top)
	return d, nil
}

// sending reports whether s has jobs left that engines work on.
func sending(s store.Status) bool {
	return !done(s) && s.State != store.StatePaused && s.State != store.StateScheduled && s.Queued > 0
}

// etaSeconds is the time left: the queued jobs at the recent rate, but
// not before the last job waiting in the delayed set is due. nil when
// unknown (nothing moving while jobs are in the stream), paused, finished
// or scheduled.
func etaSeconds(s store.Status, rate float64, delayed int64, until time.Time, now time.Time) *float64 {
	if done(s) || s.State == store.StatePaused || s.State == store.StateScheduled || s.Queued == 0 {
		return nil
	}
	wait := 0.0
	if delayed > 0 {
		wait = max(until.Sub(now).Seconds(), 0)
	}
	var secs float64
	switch {
	case rate > 0:
		secs = max(float64(s.Queued)/rate, wait)
	case delayed >= s.Queued:
		secs = wait // everything left waits for its time
	default:
		return nil
	}
	return &secs
}

// lineWait is one line of a campaign: its destination key, how many jobs
// wait in it and are in flight, and why they wait.
type lineWait struct {
	Key      string     `json:"key"`
	Lane     string     `json:"lane"`
	Waiting  int64      `json:"waiting"`
	InFlight int64      `json:"in_flight"`
	State    string     `json:"state"` // sending, paced, suspended, paused
	Until    *time.Time `json:"until,omitempty"`
	Reply    string     `json:"reply,omitempty"` // the reply that suspended it, or the last deferral
	Rate     float64    `json:"rate"`            // the key's rate, msg/s, all engines
}

// linesOf reads where campaign id's jobs wait, with each key's throttle
// state.
func linesOf(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) ([]lineWait, error) {
	depths, err := streams.New(rdb, ks, "").CampaignLines(ctx, id)
	if err != nil || len(depths) == 0 {
		return nil, err
	}
	states, err := throttle.Inspect(ctx, rdb, ks)
	if err != nil {
		return nil, err
	}
	byKey := map[string]throttle.Status{}
	for _, st := range states {
		byKey[st.Provider] = st
	}
	now := time.Now()
	out := make([]lineWait, 0, len(depths))
	for _, d := range depths {
		lw := lineWait{Key: d.Line.Key, Lane: string(d.Line.Lane), Waiting: d.Waiting, InFlight: d.Held, State: "sending"}
		st, known := byKey[d.Line.Key]
		if known {
			lw.Rate = st.Rate
		}
		switch {
		case known && st.SuspendedUntil.After(now):
			lw.State, lw.Until, lw.Reply = "suspended", timePtr(st.SuspendedUntil), "rule "+st.SuspendedBy
			if st.LastDeferral != "" {
				lw.Reply += ": " + st.LastDeferral
			}
		case !d.NotBefore.IsZero():
			lw.State, lw.Until = "paced", timePtr(d.NotBefore)
			if known {
				lw.Reply = st.LastDeferral
			}
		}
		out = append(out, lw)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Waiting > out[j].Waiting })
	return out, nil
}

// linesWait is the time the slowest line needs: a suspension's rest, then
// its waiting jobs at its key's rate.
func linesWait(ls []lineWait, now time.Time) float64 {
	longest := 0.0
	for _, l := range ls {
		w := 0.0
		if l.State == "suspended" && l.Until != nil {
			w = l.Until.Sub(now).Seconds()
		}
		if l.Rate > 0 {
			w += float64(l.Waiting) / l.Rate
		}
		longest = max(longest, w)
	}
	return longest
}

func printDetail(w io.Writer, d *campaignDetail) error {
	s := d.Status
	fmt.Fprintf(w, "campaign %s  %s lane  %s", s.ID, d.Lane, s.State)
	if s.State == store.StateScheduled && d.SendAt != nil {
		fmt.Fprintf(w, "  starts %s (in %s)", d.SendAt.Local().Format(time.RFC3339), human(time.Until(*d.SendAt)))
	}
	fmt.Fprintln(w)
	final := s.Total - s.Queued
	frac := 0.0
	if s.Total > 0 {
		frac = float64(final) / float64(s.Total)
	}
	fmt.Fprintf(w, "%s %5.1f%%  %d of %d final  %.1f msg/s", bar(frac, 30), 100*frac, final, s.Total, d.Rate)
	if d.ETASeconds != nil {
		fmt.Fprintf(w, "  ETA %s", human(time.Duration(*d.ETASeconds*float64(time.Second))))
	}
	if d.Delayed > 0 && d.DelayedUntil != nil && s.State != store.StateScheduled {
		fmt.Fprintf(w, "  (%d waiting for retries until %s)", d.Delayed, d.DelayedUntil.Local().Format(time.TimeOnly))
	}
	fmt.Fprintf(w, "\nqueued %d (deferred %d)  delivered %d  bounced %d  suppressed %d  failed %d  cancelled %d\n\n",
		s.Queued, s.Deferred, s.Delivered, s.Bounced, s.Suppressed, s.Failed, s.Cancelled)
	if len(d.Lines) > 0 {
		lw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(lw, "WAITING FOR\tWAITING\tIN FLIGHT\tRATE\tSTATE\n")
		for _, l := range d.Lines {
			state := l.State
			if l.Until != nil {
				state += " until " + l.Until.Local().Format(time.TimeOnly)
			}
			if l.Reply != "" {
				state += " (" + l.Reply + ")"
			}
			fmt.Fprintf(lw, "%s\t%d\t%d\t%.1f/s\t%s\n", l.Key, l.Waiting, l.InFlight, l.Rate, state)
		}
		if err := lw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	head := "DOMAIN"
	if d.By == "mx" {
		head = "MX HOST"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tTOTAL\tQUEUED\tDELIVERED\tDEFERRED\tBOUNCED\tSUPPRESSED\tFAILED\tCANCELLED\t\n", head)
	for _, p := range d.Providers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Name, p.Total, p.Queued, p.Delivered, p.Deferred, p.Bounced, p.Suppressed, p.Failed, p.Cancelled)
	}
	return tw.Flush()
}
