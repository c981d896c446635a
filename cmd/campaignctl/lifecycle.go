package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
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
	id, err := oneArg(fs, args, "campaign ID")
	if err != nil {
		return err
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	n, err := control.Resume(ctx, rdb, ks, id)
	if err != nil {
		return noCampaign(err, id)
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
	left, err := cancel(ctx, rdb, ks, id)
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

// cancel cancels id (if it is not already) and brings its delayed jobs
// forward, so a retry due in an hour, or a whole scheduled campaign, is
// recorded as cancelled now rather than when it falls due. It returns how
// many parked jobs control.Cancel settled.
func cancel(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (int, error) {
	st := store.New(rdb, ks)
	state, err := st.State(ctx, id)
	if err != nil {
		return 0, err
	}
	n := 0
	if state != store.StateCancelled {
		if n, err = control.Cancel(ctx, rdb, ks, id); err != nil {
			return n, err
		}
	}
	lane, err := rdb.HGet(ctx, st.Key(id), "lane").Result()
	if err != nil {
		return n, fmt.Errorf("campaign %s: %w", id, err)
	}
	l, err := streams.ParseLane(lane)
	if err != nil {
		return n, err
	}
	return n, expedite(ctx, rdb, streams.New(rdb, ks, "campaignctl").Delayed(l), id, time.Now())
}

// expedite makes the campaign's jobs in the delayed set at key due at
// now; engines' movers then stream them and settle them as cancelled.
// ZADD XX only touches members still there, so a job the mover took
// meanwhile is not put back.
func expedite(ctx context.Context, rdb redis.UniversalClient, key, id string, now time.Time) error {
	// Jobs are JSON with the campaign as "c"; the match narrows the scan,
	// decoding confirms it.
	match := "*" + `"c":"` + globEscape(id) + `"` + "*"
	var cursor uint64
	for {
		kv, next, err := rdb.ZScan(ctx, key, cursor, match, 1000).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", key, err)
		}
		var due []redis.Z
		for i := 0; i+1 < len(kv); i += 2 {
			var j streams.Job
			if json.Unmarshal([]byte(kv[i]), &j) == nil && j.Campaign == id {
				due = append(due, redis.Z{Score: float64(now.UnixMilli()), Member: kv[i]})
			}
		}
		if len(due) > 0 {
			if err := rdb.ZAddXX(ctx, key, due...).Err(); err != nil {
				return fmt.Errorf("bring %s's jobs forward: %w", id, err)
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
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

// globEscape escapes Redis glob characters, so an id is matched as written.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
