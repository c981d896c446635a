package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
)

// campaignDetail is one campaign's status with what its records tell:
// the recent rate, the time left, and who the recipients are with. In
// JSON (status --detail) it is store.Status's keys plus these.
type campaignDetail struct {
	store.Status
	Lane       string          `json:"lane"`
	SendAt     *time.Time      `json:"send_at,omitempty"`
	Rate       float64         `json:"rate"`                  // final outcomes per second, last minute
	ETASeconds *float64        `json:"eta_seconds,omitempty"` // unknown while nothing is moving
	By         string          `json:"providers_by"`
	Providers  []report.Counts `json:"providers"`
}

// loadDetail reads s's campaign fields and scans its records, in batches,
// for the per-provider breakdown and the rate.
func loadDetail(ctx context.Context, rdb redis.UniversalClient, st *store.Store, s store.Status, byMX bool, top int) (*campaignDetail, error) {
	d := &campaignDetail{Status: s, By: "domain"}
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
	if d.Rate > 0 && !done(s) && s.State != store.StatePaused {
		secs := float64(s.Queued) / d.Rate
		d.ETASeconds = &secs
	}
	d.Providers = sum.Top(top)
	return d, nil
}

func printDetail(w io.Writer, d *campaignDetail) error {
	s := d.Status
	fmt.Fprintf(w, "campaign %s  %s lane  %s", s.ID, d.Lane, s.State)
	if s.State == store.StateScheduled && d.SendAt != nil {
		fmt.Fprintf(w, "  starts %s (in %s)", d.SendAt.Local().Format(time.RFC3339), time.Until(*d.SendAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	final := s.Total - s.Queued
	frac := 0.0
	if s.Total > 0 {
		frac = float64(final) / float64(s.Total)
	}
	fmt.Fprintf(w, "%s %5.1f%%  %d of %d final  %.1f msg/s", bar(frac, 30), 100*frac, final, s.Total, d.Rate)
	if d.ETASeconds != nil {
		fmt.Fprintf(w, "  ETA %s", eta(s.Queued, d.Rate))
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
