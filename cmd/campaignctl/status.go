package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
)

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[flags] [ID]",
		"Shows each campaign's state and counts: total, queued (not yet final, includes deferred),\n"+
			"delivered, deferred (waiting for a retry), bounced, suppressed, failed.",
		"campaignctl status welcome --json")
	asJSON := fs.Bool("json", false, "print JSON (an object for one ID, an array otherwise)")
	watch := fs.Bool("watch", false, "refresh every second until every shown campaign is finished")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("at most one campaign ID: %w", errUsage)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	st := store.New(rdb, ks)
	for {
		var list []store.Status
		if len(pos) == 1 {
			s, err := st.Status(ctx, pos[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no campaign %q", pos[0])
			}
			if err != nil {
				return err
			}
			list = []store.Status{s}
		} else if list, err = st.List(ctx); err != nil {
			return err
		}
		done := true
		for _, s := range list {
			done = done && s.State == store.StateFinished
		}
		if !*watch || done || ctx.Err() != nil {
			return printStatus(e, list, len(pos) == 1, *asJSON)
		}
		if !*asJSON {
			_ = printStatus(e, list, false, false)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func printStatus(e *env, list []store.Status, one, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if one {
			return enc.Encode(list[0])
		}
		if list == nil {
			list = []store.Status{}
		}
		return enc.Encode(list)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "ID\tSTATE\tTOTAL\tQUEUED\tDELIVERED\tDEFERRED\tBOUNCED\tSUPPRESSED\tFAILED\t")
	for _, s := range list {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.ID, s.State, s.Total, s.Queued, s.Delivered, s.Deferred, s.Bounced, s.Suppressed, s.Failed)
	}
	return w.Flush()
}
