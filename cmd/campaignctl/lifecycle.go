package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/store"
)

func cmdPause(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "pause", "ID",
		"Stops every engine from sending the campaign, within about two seconds. Its jobs are kept (parked in\n"+
			"Redis) until campaignctl resume; messages already handed to a receiver finish.",
		"campaignctl pause welcome-2025")
	id, err := oneArg(fs, args, "campaign ID")
	if err != nil {
		return err
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	if err := control.Pause(ctx, rdb, ks, id); err != nil {
		return noCampaign(err, id)
	}
	fmt.Fprintf(e.stdout, "campaign %s paused: engines stop sending it within seconds; its jobs are kept (campaignctl resume %s)\n", id, id)
	return nil
}

func cmdResume(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "resume", "ID",
		"Lets engines send a paused campaign again and puts its parked jobs back in line. A recipient already\n"+
			"delivered is never sent to again. Takes a couple of seconds: it sweeps the parked jobs twice, so\n"+
			"one parked by an engine that had not yet seen the change is not left behind.",
		"campaignctl resume welcome-2025")
	force := fs.Bool("force", false, "also resume a campaign a guardrail paused (complaint or bounce rate), and turn its guardrails off")
	id, err := oneArg(fs, args, "campaign ID")
	if err != nil {
		return err
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	resume := control.Resume
	if *force {
		resume = control.ResumeForce
	}
	n, err := resume(ctx, rdb, ks, id)
	if err != nil {
		return guardrailRefusal(noCampaign(err, id), id)
	}
	fmt.Fprintf(e.stdout, "campaign %s resumed: %d parked jobs back in line\n", id, n)
	return nil
}

func cmdCancel(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "cancel", "[flags] ID",
		"Ends the campaign for good: every recipient not yet sent is recorded as cancelled (parked jobs at\n"+
			"once, queued ones as engines reach them, within seconds; retries and scheduled jobs are brought\n"+
			"forward so they do not wait for their time). Delivered recipients stay delivered. It cannot be undone.",
		"campaignctl cancel welcome-2025 --wait 1m")
	wait := fs.Duration("wait", 0, "wait up to this long until every remaining recipient is recorded as cancelled")
	id, err := oneArg(fs, args, "campaign ID")
	if err != nil {
		return err
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	left, err := control.Cancel(ctx, rdb, ks, id)
	if err != nil {
		return noCampaign(err, id)
	}
	fmt.Fprintf(e.stdout, "campaign %s cancelled: %d parked jobs recorded as cancelled; engines record the rest as they reach them\n", id, left)
	if *wait <= 0 {
		return nil
	}
	st, err := drain(ctx, store.New(rdb, ks), id, *wait)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "campaign %s: %d delivered, %d cancelled, nothing left queued\n", id, st.Delivered, st.Cancelled)
	return nil
}

// drain waits until the cancelled campaign id has nothing queued.
func drain(ctx context.Context, st *store.Store, id string, wait time.Duration) (store.Status, error) {
	deadline := time.Now().Add(wait)
	for {
		s, err := st.Status(ctx, id)
		if err != nil {
			return s, noCampaign(err, id)
		}
		if s.Queued == 0 {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("campaign %s still has %d queued after %s: is an engine running? Engines record them as cancelled when they reach them", id, s.Queued, wait)
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
