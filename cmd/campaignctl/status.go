package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
)

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[flags] [ID]",
		"Without ID, a table of every campaign. With ID, one campaign: counts, progress bar, rate over the\n"+
			"last minute, ETA, and a per-provider breakdown read from its recipient records.\n\n"+
			"Counts: total, queued (not yet final, includes deferred), delivered, deferred (waiting for a\n"+
			"retry), bounced, suppressed, failed, and cancelled. --json prints the keys id, state, total,\n"+
			"queued, delivered, deferred, bounced, suppressed, failed, and cancelled, complaints and\n"+
			"pause_reason when set; add --detail for lane, send time, rate, ETA, delayed jobs, providers, and\n"+
			"complaint_rate and bounce_rate (fractions of delivered, as the guardrails judge them).\n"+
			"With ID, the complaint and bounce rates and why a guardrail paused it are printed too.\n"+
			"Without ID, the table is followed by each sending (From) domain's rates, summed over its\n"+
			"campaigns, as the domain guardrails judge them.\n\n"+
			"The ETA counts the queued recipients at the recent rate, but not before the last of the\n"+
			"campaign's jobs waiting in the delayed set (retries, suspensions) is due.\n\n"+
			"--watch on a terminal redraws the view; piped, it prints a timestamped line per campaign whenever\n"+
			"its figures change; with --json, one JSON document per line per refresh (JSON Lines).",
		"campaignctl status welcome-2025 --watch")
	asJSON := fs.Bool("json", false, "print JSON (an object for one ID, an array otherwise; with --watch one per line per refresh)")
	watch := fs.Bool("watch", false, "refresh until every shown campaign is finished (or cancelled and drained)")
	detail := fs.Bool("detail", false, "with ID and --json: add lane, send_at, rate, eta_seconds, delayed, delayed_until, complaint_rate, bounce_rate and providers")
	by := fs.String("by", "domain", "group providers by recipient \"domain\" or by the \"mx\" host that answered")
	top := fs.Int("top", 10, "show this many providers; the rest are summed up as (other)")
	every := fs.Duration("interval", time.Second, "with --watch: time between refreshes (longer for big campaigns, whose records take a while to read)")
	rcpt := fs.String("recipient", "", "with ID: one recipient's outcome and its attempts (time, MX host, code, reply)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *rcpt != "" {
		return showRecipient(ctx, e, pos, *rcpt, *asJSON)
	}
	switch {
	case len(pos) > 1:
		return fmt.Errorf("at most one campaign ID: %w", errUsage)
	case *detail && len(pos) == 0:
		return fmt.Errorf("--detail needs a campaign ID: %w", errUsage)
	case *by != "domain" && *by != "mx":
		return fmt.Errorf("--by %q: want domain or mx: %w", *by, errUsage)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	st := store.New(rdb, ks)
	tty := isTerminal(e.stdout)
	seen := map[string]string{} // piped --watch: each campaign's last line
	for round := 0; ; round++ {
		began := time.Now()
		var list []store.Status
		var d *campaignDetail
		if len(pos) == 1 {
			s, err := st.Status(ctx, pos[0])
			if err != nil {
				return noCampaign(err, pos[0])
			}
			list = []store.Status{s}
			// The breakdown reads every record: only for those who see it.
			if !*asJSON || *detail {
				if d, err = loadDetail(ctx, rdb, ks, st, s, *by == "mx", *top); err != nil {
					return err
				}
			}
		} else if list, err = st.List(ctx); err != nil {
			return err
		}
		last := !*watch || allDone(list) || ctx.Err() != nil
		switch {
		case *watch && *asJSON:
			// JSON Lines: one compact document per tick.
			if err := printJSON(e.stdout, list, d, len(pos) == 1, *detail, ""); err != nil {
				return err
			}
		case *watch && !tty:
			// Pipes and logs: a timestamped line per campaign that changed.
			printChanges(e.stdout, list, d, seen, time.Now())
		default:
			if *watch {
				fmt.Fprint(e.stdout, "\x1b[H\x1b[2J") // redraw in place
			}
			if err := printStatus(e.stdout, list, d, len(pos) == 1, *asJSON, *detail); err != nil {
				return err
			}
			if len(pos) == 0 && !*asJSON {
				if err := printSendingDomains(ctx, e.stdout, st, list); err != nil {
					return err
				}
			}
		}
		if last {
			return nil
		}
		// Never spend more than a third of the time reading records.
		wait := max(*every, 2*time.Since(began))
		select {
		case <-ctx.Done():
			return nil // ^C ends a watch normally
		case <-time.After(wait):
		}
	}
}

// done reports whether a campaign has nothing more to do.
func done(s store.Status) bool {
	return s.State == store.StateFinished || s.State == store.StateCancelled && s.Queued == 0
}

func allDone(list []store.Status) bool {
	for _, s := range list {
		if !done(s) {
			return false
		}
	}
	return true
}

func printStatus(w io.Writer, list []store.Status, d *campaignDetail, one, asJSON, detail bool) error {
	if asJSON {
		return printJSON(w, list, d, one, detail, "  ")
	}
	if one && d != nil {
		if err := printDetail(w, d); err != nil {
			return err
		}
		printGuardrail(w, list[0])
		return nil
	}
	return printTable(w, list)
}

// printJSON prints one JSON document: indented, or on one line when
// indent is "" (status --watch --json, one per tick).
func printJSON(w io.Writer, list []store.Status, d *campaignDetail, one, detail bool, indent string) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", indent)
	switch {
	case one && detail:
		return enc.Encode(d)
	case one:
		return enc.Encode(list[0]) // the public contract: store.Status's keys only
	case list == nil:
		return enc.Encode([]store.Status{})
	}
	return enc.Encode(list)
}

// printChanges prints, for each campaign whose figures changed since the
// last call, one line stamped with now; seen keeps the last lines.
func printChanges(w io.Writer, list []store.Status, d *campaignDetail, seen map[string]string, now time.Time) {
	for _, s := range list {
		line := fmt.Sprintf("%s %s %d/%d final (%s): queued %d (deferred %d), delivered %d, bounced %d, suppressed %d, failed %d, cancelled %d",
			s.ID, s.State, s.Total-s.Queued, s.Total, percent(s.Total-s.Queued, s.Total),
			s.Queued, s.Deferred, s.Delivered, s.Bounced, s.Suppressed, s.Failed, s.Cancelled)
		if d != nil && d.ID == s.ID && d.Delayed > 0 && d.DelayedUntil != nil {
			line += fmt.Sprintf(", %d waiting for retries until %s", d.Delayed, d.DelayedUntil.Local().Format(time.TimeOnly))
		}
		if seen[s.ID] == line {
			continue
		}
		seen[s.ID] = line
		fmt.Fprintf(w, "%s %s\n", now.Format(time.RFC3339), line)
	}
}

func printTable(w io.Writer, list []store.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ID\tSTATE\tTOTAL\tQUEUED\tDELIVERED\tDEFERRED\tBOUNCED\tSUPPRESSED\tFAILED\tCANCELLED\tDONE\t")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", s.ID, s.State, s.Total, s.Queued,
			s.Delivered, s.Deferred, s.Bounced, s.Suppressed, s.Failed, s.Cancelled, percent(s.Total-s.Queued, s.Total))
	}
	return tw.Flush()
}

func percent(part, whole int64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(part)/float64(whole))
}
