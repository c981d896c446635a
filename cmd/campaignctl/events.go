package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/events"
)

// events is registered here rather than in main.go's table.
func init() {
	commands["events"] = command{"print the event stream (every state change); --follow tails it", cmdEvents}
	order = append(order, "events")
	commandFlags["events"] = []string{"--follow", "--campaign", "--type", "--json", "--since"}
}

func cmdEvents(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "events", "[flags]",
		"Prints events from the event streams (one per shard, merged in time order), oldest first: one line per state change\n"+
			"(time, event id, type, campaign, job, recipient, code, enhanced code, MX host, attempt, reply),\n"+
			"or with --json one object per line. Types: "+typeNames()+".\n"+
			"Without --follow it prints what is kept since --since and exits; with --follow it then waits\n"+
			"for new events until interrupted. The event id (SHARD/STREAM-ID, or SHARD/STREAM-ID/N for the N-th of a\n"+
			"batch) is stable: pass it to --since to go on after it.",
		"campaignctl events --follow --campaign welcome-2025 --since 10m")
	follow := fs.Bool("follow", false, "keep printing new events as they come (XREAD BLOCK)")
	campaign := fs.String("campaign", "", "only this campaign's events")
	types := fs.String("type", "", "only these types, comma-separated (e.g. bounced,complained)")
	asJSON := fs.Bool("json", false, "JSON Lines: one event object per line")
	since := fs.String("since", "", "start after this event id, or this long ago (e.g. 1h); default: 1h, or only new events with --follow")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: %w", pos[0], errUsage)
	}
	want := map[events.Type]bool{}
	if *types != "" {
		for _, s := range strings.Split(*types, ",") {
			t, err := events.ParseType(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--type: %w: %w", err, errUsage)
			}
			want[t] = true
		}
	}
	s := *since
	if s == "" && !*follow {
		s = "1h"
	}
	var cur events.Cursor
	if s != "" {
		var err error
		if cur, err = events.Since(s, time.Now()); err != nil {
			return fmt.Errorf("%w: %w", err, errUsage)
		}
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	log := events.New(rdb, ks)
	if s == "" {
		if cur, err = log.Last(ctx); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(e.stdout)
	for {
		block := time.Duration(-1)
		if *follow {
			block = 2 * time.Second
		}
		evs, next, err := log.ReadFrom(ctx, cur, 500, block)
		if ctx.Err() != nil {
			return nil // interrupted: a normal end of --follow
		}
		if err != nil {
			return err
		}
		cur = next
		for _, ev := range evs {
			if (*campaign != "" && ev.Campaign != *campaign) || (len(want) > 0 && !want[ev.Type]) {
				continue
			}
			if *asJSON {
				if err := enc.Encode(ev); err != nil {
					return err
				}
			} else {
				printEvent(e.stdout, ev)
			}
		}
		if len(evs) == 0 && !*follow {
			return nil
		}
	}
}

func printEvent(w io.Writer, ev events.Event) {
	f := []string{ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.ID, string(ev.Type)}
	add := func(s string) {
		if s == "" {
			s = "-"
		}
		f = append(f, s)
	}
	add(ev.Campaign)
	add(ev.Job)
	add(ev.Recipient)
	num := func(n int) {
		if n == 0 {
			add("")
		} else {
			add(fmt.Sprint(n))
		}
	}
	num(ev.Code)
	add(ev.Enhanced)
	add(ev.MX)
	num(ev.Attempt)
	text := ev.Reply
	if text == "" {
		text = ev.Reason
	}
	if text != "" {
		f = append(f, text)
	}
	fmt.Fprintln(w, strings.Join(f, "  "))
}

func typeNames() string {
	s := make([]string, len(events.Types))
	for i, t := range events.Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}
