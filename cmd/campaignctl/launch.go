package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
)

func cmdLaunch(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "launch", "[flags] FILE",
		"Validates the campaign and its whole recipient list, stores the campaign and enqueues one job per\n"+
			"recipient. Relaunching the same file after an interruption resumes where it stopped; nobody is\n"+
			"queued twice. A list with invalid recipients is refused unless --skip-invalid is given.\n\n"+
			"A campaign with send_at (or --at) in the future is scheduled: its jobs wait in Redis and the\n"+
			"engines start it on time, or as soon as one runs if none was running then. Progress goes to\n"+
			"stderr: a bar on a terminal, a line every few seconds otherwise.",
		"campaignctl launch campaigns/welcome.yaml --at 2025-06-01T09:00:00+02:00")
	skip := fs.Bool("skip-invalid", false, "enqueue the valid recipients of a list that has invalid ones (each is still reported)")
	at := fs.String("at", "", "send from this time on, overriding send_at: RFC 3339 (2025-06-01T09:00:00Z) or a delay (+10m, 2h)")
	quiet := fs.Bool("q", false, "no progress output")
	outside := fs.Bool("allow-outside", false, "let text_file and html_file name files outside the campaign file's directory (refused by default)")
	path, err := oneArg(fs, args, "campaign FILE")
	if err != nil {
		return err
	}
	var sendAt time.Time
	relative := false
	if *at != "" {
		if sendAt, relative, err = parseAt(*at, time.Now()); err != nil {
			return fmt.Errorf("--at: %w: %w", err, errUsage)
		}
	}
	// Loaded here for the id and the list's size; Launch checks it all.
	spec, err := campaign.LoadWith(path, campaign.LoadOptions{AllowOutside: *outside})
	if err != nil {
		return err
	}
	if err := checkPool(e, spec); err != nil {
		return err
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	if relative {
		// A delay means "from the first launch": rerunning the same command
		// to resume must not move the time (nor change the campaign's
		// fingerprint, which would refuse the resume).
		if prev := storedSendAt(ctx, rdb, ks, spec.ID); !prev.IsZero() {
			sendAt = prev
			fmt.Fprintf(e.stderr, "resuming with the send time of the first launch, %s\n", sendAt.Format(time.RFC3339))
		}
	}
	opt := launch.Options{SkipInvalid: *skip, Suppressed: suppressedFunc(rdb, ks), SendAt: sendAt, AllowOutside: *outside}
	if r, err := e.redisConfig(); err == nil {
		opt.WaitReplicas, opt.WaitTimeout = r.WaitReplicas, r.WaitTimeout
	}
	start := time.Now()
	var m *meter
	final := ""
	if !*quiet {
		m = newMeter(e.stderr)
		lines := countLines(spec.RecipientsPath())
		opt.Progress = func(p launch.Progress) {
			final = launchLine(p, lines, time.Since(start))
			m.show(final)
		}
	}
	res, err := launch.Launch(ctx, rdb, ks, path, opt)
	if m != nil {
		m.done(final) // the last batch's numbers, even if too soon to show
	}
	for _, bad := range res.Invalid {
		fmt.Fprintln(e.stderr, "invalid recipient:", bad)
	}
	if more := res.InvalidN - len(res.Invalid); more > 0 {
		fmt.Fprintf(e.stderr, "... and %s more\n", count(more, "invalid recipient"))
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d enqueued; run the same command again to resume: %w", res.Enqueued, err)
		}
		return err
	}
	if res.Already {
		fmt.Fprintf(e.stdout, "campaign %s was launched already; nothing enqueued (see campaignctl status %s)\n", res.ID, res.ID)
		return nil
	}
	verb := "launched"
	if res.Resumed {
		verb = "resumed"
	}
	fmt.Fprintf(e.stdout, "campaign %s %s on the %s lane: %s, %d enqueued, %d suppressed, %s, %d invalid skipped (%s)\n",
		res.ID, verb, res.Lane, count(res.Valid, "valid recipient"), res.Enqueued, res.Suppressed, count(res.Duplicates, "duplicate"), res.InvalidN, time.Since(start).Round(time.Millisecond))
	if len(res.DuplicateLines) > 0 {
		fmt.Fprintf(e.stdout, "%s skipped: %s\n", count(res.Duplicates, "duplicate"), lineList(res.DuplicateLines, res.Duplicates))
	}
	if len(res.OldEngines) > 0 {
		fmt.Fprintf(e.stderr, "warning: engines of an older version are running (%s): jobs or events enqueued in a form they read; upgrade every engine for the faster launch\n", strings.Join(res.OldEngines, ", "))
	}
	when := spec.SendAt
	if !sendAt.IsZero() {
		when = sendAt
	}
	if when.After(time.Now()) {
		fmt.Fprintf(e.stdout, "scheduled: sending starts at %s (in %s)\n", when.Format(time.RFC3339), human(time.Until(when)))
	}
	return nil
}

// lineList names lines: "line 7", "lines 7, 12", "lines 7, 12 and 3
// more" when n exceeds the lines known.
func lineList(lines []int, n int) string {
	s := make([]string, len(lines))
	for i, l := range lines {
		s[i] = strconv.Itoa(l)
	}
	out := "line " + strings.Join(s, ", ")
	if len(lines) > 1 || n > len(lines) {
		out = "lines " + strings.Join(s, ", ")
	}
	if more := n - len(lines); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// launchLine is one progress report: how far through the file, what was
// enqueued or held back, and how fast.
func launchLine(p launch.Progress, lines int, took time.Duration) string {
	secs := max(took.Seconds(), 0.001)
	rows := p.Enqueued + p.Suppressed + p.Duplicates
	counts := fmt.Sprintf("%d enqueued, %d suppressed, %s, %d invalid skipped, %.0f rows/s", p.Enqueued, p.Suppressed, count(p.Duplicates, "duplicate"), p.Invalid, float64(rows)/secs)
	if lines <= 0 {
		return fmt.Sprintf("line %d: %s", p.Line, counts)
	}
	f := float64(p.Line) / float64(lines)
	s := fmt.Sprintf("%s %3.0f%% line %d/%d: %s", bar(f, 24), 100*f, p.Line, lines, counts)
	if left := eta(int64(lines-p.Line), float64(p.Line)/secs); left != "" && p.Line < lines {
		s += ", ETA " + left
	}
	return s
}

// countLines counts a file's lines (the last one may lack its newline):
// launch reports progress by line, so this is the bar's 100%. Zero when
// the file cannot be read; Launch will say why.
func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, last := 0, byte('\n')
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if k > 0 {
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0
		}
	}
	if last != '\n' {
		n++
	}
	return n
}

// parseAt reads --at: an RFC 3339 time, or a delay from now ("+10m",
// "90s"). relative says which. A time in the past is refused: it is
// almost certainly a typo, and would send at once.
func parseAt(s string, now time.Time) (t time.Time, relative bool, err error) {
	if d, derr := time.ParseDuration(strings.TrimPrefix(s, "+")); derr == nil {
		if d <= 0 {
			return time.Time{}, false, fmt.Errorf("delay %q must be positive", s)
		}
		return now.Add(d), true, nil
	}
	t, err = time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%q is neither an RFC 3339 time (2025-06-01T09:00:00Z) nor a delay (+10m)", s)
	}
	if !t.After(now) {
		return time.Time{}, false, fmt.Errorf("%s is in the past", t.Format(time.RFC3339))
	}
	return t, false, nil
}

// storedSendAt is the send time of a campaign whose launch was
// interrupted, zero when there is none.
func storedSendAt(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) time.Time {
	st := store.New(rdb, ks)
	if state, err := st.State(ctx, id); err != nil || state != store.StateLaunching {
		return time.Time{}
	}
	raw, err := st.Spec(ctx, id)
	if err != nil {
		return time.Time{}
	}
	var s struct {
		SendAt time.Time
	}
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}
	}
	return s.SendAt
}
