package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/store"
)

func cmdDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "delete", "[flags] ID",
		"Removes a finished or cancelled campaign's data: its definition and counters, every recipient's\n"+
			"record, parked jobs, and its entry in the campaign list. The suppression list is kept (bounces and\n"+
			"unsubscribes outlive campaigns). A campaign still sending, scheduled or paused is refused unless\n"+
			"--force, which cancels it first and waits until engines have recorded the rest as cancelled.\n"+
			"Export what you need first: campaignctl report ID -o FILE.",
		"campaignctl delete welcome-2025")
	force := fs.Bool("force", false, "cancel a campaign that is not finished, then delete it")
	wait := fs.Duration("wait", 30*time.Second, "with --force: how long to wait for engines to drain the cancelled campaign")
	id, err := oneArg(fs, args, "campaign ID")
	if err != nil {
		return err
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	st := store.New(rdb, ks)
	s, err := st.Status(ctx, id)
	if err != nil {
		return noCampaign(err, id)
	}
	if !done(s) {
		if !*force {
			return fmt.Errorf("campaign %s is %s with %d recipients not final: cancel it first (campaignctl cancel %s), or delete --force", id, s.State, s.Queued, id)
		}
		if _, err := control.Cancel(ctx, rdb, ks, id); err != nil {
			return noCampaign(err, id)
		}
		if _, err := drain(ctx, st, id, *wait); err != nil {
			return err
		}
	}
	n, err := st.Delete(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return noCampaign(err, id)
	case errors.Is(err, store.ErrChanged):
		return fmt.Errorf("campaign %s changed while deleting (resumed?); look at campaignctl status %s and retry", id, id)
	case err != nil:
		return err
	}
	fmt.Fprintf(e.stdout, "deleted campaign %s and its %d recipient records; the suppression list is unchanged\n", id, n)
	return nil
}
