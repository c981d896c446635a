package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/store"
)

// deleteScript removes a campaign whose every recipient is final: its
// hash, records and parked list, and its index entry. It checks that in
// the same step, so a resume racing the delete cannot leave jobs behind
// with no campaign. UNLINK frees a big records hash off the main thread.
var deleteScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return -1 end
local q = tonumber(redis.call('HGET', KEYS[1], 'queued') or '0')
if q ~= 0 or (st ~= 'sending' and st ~= 'cancelled') then return -2 end
local n = redis.call('HLEN', KEYS[2])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
return n
`)

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
		if _, err := cancel(ctx, rdb, ks, id); err != nil {
			return noCampaign(err, id)
		}
		if _, err := drain(ctx, st, id, *wait); err != nil {
			return err
		}
	}
	// The campaign index key is store's (Store.index); deleting is the one
	// thing store has no method for.
	n, err := deleteScript.Run(ctx, rdb, []string{st.Key(id), st.Tally(id).Records, st.ParkKey(id), ks.Key("campaigns")}, id).Int()
	switch {
	case err != nil:
		return fmt.Errorf("delete %s: %w", id, err)
	case n == -1:
		return noCampaign(store.ErrNotFound, id)
	case n == -2:
		return fmt.Errorf("campaign %s changed while deleting (resumed?); look at campaignctl status %s and retry", id, id)
	}
	fmt.Fprintf(e.stdout, "deleted campaign %s and its %d recipient records; the suppression list is unchanged\n", id, n)
	return nil
}
