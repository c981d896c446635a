package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/launch"
)

func cmdLaunch(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "launch", "[flags] FILE",
		"Validates the campaign and its whole recipient list, stores the campaign and enqueues one job per\n"+
			"recipient. Relaunching the same file after an interruption resumes where it stopped; nobody is\n"+
			"queued twice. A list with invalid recipients is refused unless --skip-invalid is given.",
		"campaignctl launch campaigns/welcome.yaml")
	skip := fs.Bool("skip-invalid", false, "enqueue the valid recipients of a list that has invalid ones (each is still reported)")
	quiet := fs.Bool("q", false, "no progress output")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("want exactly one campaign FILE: %w", errUsage)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	last := start
	opt := launch.Options{SkipInvalid: *skip, Suppressed: suppressedFunc(rdb, ks)}
	if !*quiet {
		opt.Progress = func(p launch.Progress) {
			if time.Since(last) < time.Second {
				return
			}
			last = time.Now()
			rate := float64(p.Enqueued+p.Suppressed) / time.Since(start).Seconds()
			fmt.Fprintf(e.stderr, "\rline %d: %d enqueued, %d suppressed, %d duplicates (%.0f rows/s)   ",
				p.Line, p.Enqueued, p.Suppressed, p.Duplicates, rate)
		}
	}
	res, err := launch.Launch(ctx, rdb, ks, pos[0], opt)
	for _, bad := range res.Invalid {
		fmt.Fprintln(e.stderr, "invalid recipient:", bad)
	}
	if more := res.InvalidN - len(res.Invalid); more > 0 {
		fmt.Fprintf(e.stderr, "... and %d more invalid recipients\n", more)
	}
	if err != nil {
		return err
	}
	if !*quiet && time.Since(start) >= time.Second {
		fmt.Fprintln(e.stderr)
	}
	switch {
	case res.Already:
		fmt.Fprintf(e.stdout, "campaign %s was launched already; nothing enqueued (see campaignctl status %s)\n", res.ID, res.ID)
	default:
		verb := "launched"
		if res.Resumed {
			verb = "resumed"
		}
		fmt.Fprintf(e.stdout, "campaign %s %s on the %s lane: %d valid recipients, %d enqueued, %d suppressed, %d duplicates, %d invalid skipped (%s)\n",
			res.ID, verb, res.Lane, res.Valid, res.Enqueued, res.Suppressed, res.Duplicates, res.InvalidN, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
