package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
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
	d.ETASeconds = etaSeconds(s, d.Rate, d.Delayed, until, time.Now())
	d.Providers = sum.Top(top)
	return d, nil
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
