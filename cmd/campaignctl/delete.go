package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
			"Export what you need first: campaignctl report ID -o FILE. On a terminal it asks for confirmation\n"+
			"unless --yes or --force is given; scripts (stdin not a terminal) are not asked.",
		"campaignctl delete welcome-2025")
	force := fs.Bool("force", false, "cancel a campaign that is not finished, then delete it (asks no question)")
	yes := fs.Bool("yes", false, "do not ask for confirmation (asked only when stdin is a terminal)")
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
	if !*yes && !*force && isTerminal(os.Stdin) {
		ok, err := confirm(os.Stdin, e.stderr, fmt.Sprintf("delete campaign %s (%s, %s) and every recipient's record? [y/N] ",
			id, s.State, count(int(s.Total), "recipient")))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not confirmed; nothing deleted")
		}
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
	fmt.Fprintf(e.stdout, "deleted campaign %s and its %s; the suppression list is unchanged\n", id, count(n, "recipient record"))
	return nil
}

// confirm asks question on w and reads the answer from r: y or yes.
func confirm(r io.Reader, w io.Writer, question string) (bool, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
