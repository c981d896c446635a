package suppress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/suppression/bulk"
)

func runAdd(ctx context.Context, c *cmdCtx) error {
	addr, err := c.onePos("ADDRESS or @DOMAIN")
	if err != nil {
		return err
	}
	if c.reason == "" {
		return usagef("--reason is required (hard_bounce, unsubscribe, complaint, manual, soft_bounce_limit)")
	}
	reason, err := suppression.ParseReason(c.reason)
	if err != nil {
		return usagef("--reason: %v", err)
	}
	var scope suppression.Scope
	if c.scope != "" {
		if scope, err = suppression.ParseScope(c.scope); err != nil {
			return usagef("--scope: %v", err)
		}
	}
	e := suppression.Entry{Address: addr, Reason: reason, Scope: scope, Detail: c.detail, Source: source}
	if err := c.l.Add(ctx, e); err != nil {
		return err
	}
	// Show what is stored: a global entry stays global.
	norm, _ := suppression.Normalize(addr)
	own, dom, err := c.l.Lookup(ctx, norm)
	if err != nil {
		return err
	}
	if dom != nil && own == nil {
		own = dom
	}
	fmt.Fprintf(c.stdout, "suppressed %s (%s, %s)\n", own.Address, own.Reason, own.Scope)
	if c.scope != "" && string(own.Scope) != strings.ToLower(c.scope) {
		fmt.Fprintf(c.stderr, "note: %s was already suppressed globally; scope stays global (remove it first to narrow it)\n", own.Address)
	}
	return nil
}

func runRemove(ctx context.Context, c *cmdCtx) error {
	addr, err := c.onePos("ADDRESS or @DOMAIN")
	if err != nil {
		return err
	}
	ok, err := c.l.Remove(ctx, addr, actor(), c.why)
	if err != nil {
		return err
	}
	norm, _ := suppression.Normalize(addr)
	if !ok {
		fmt.Fprintf(c.stdout, "%s was not suppressed\n", norm)
		return ErrNotSuppressed
	}
	fmt.Fprintf(c.stdout, "removed %s\n", norm)
	if e, err := c.l.Get(ctx, norm); err == nil && e != nil {
		fmt.Fprintf(c.stderr, "warning: %s is still suppressed by the entry for %s (%s, %s)\n", norm, e.Address, e.Reason, e.Scope)
	}
	return nil
}

func runCheck(ctx context.Context, c *cmdCtx) error {
	addr, err := c.onePos("ADDRESS or @DOMAIN")
	if err != nil {
		return err
	}
	norm, err := suppression.Normalize(addr)
	if err != nil {
		return err
	}
	own, dom, err := c.l.Lookup(ctx, norm)
	if err != nil {
		return err
	}
	w := c.stdout
	switch {
	case own == nil && dom == nil:
		fmt.Fprintf(w, "%s is not suppressed\n", norm)
	case (own != nil && own.Scope == suppression.Global) || (dom != nil && dom.Scope == suppression.Global):
		fmt.Fprintf(w, "%s is suppressed for all mail\n", norm)
	default:
		fmt.Fprintf(w, "%s is suppressed for marketing mail (transactional mail still goes)\n", norm)
	}
	for _, e := range []*suppression.Entry{own, dom} {
		if e != nil {
			printEntry(w, *e)
		}
	}
	events, err := c.l.Audit(ctx, norm)
	if err != nil {
		return err
	}
	if len(events) > 0 {
		fmt.Fprintln(w, "audit trail:")
		for _, ev := range events {
			line := fmt.Sprintf("  %s  %-6s  %s  %s/%s  by %s", ev.Time.Format(time.RFC3339), ev.Action, ev.Address, ev.Reason, ev.Scope, ev.Actor)
			if ev.Campaign != "" {
				line += "  campaign " + ev.Campaign
			}
			if ev.Why != "" {
				line += "  " + strconv.Quote(ev.Why)
			}
			fmt.Fprintln(w, line)
		}
	}
	if own == nil && dom == nil {
		return ErrNotSuppressed
	}
	return nil
}

func printEntry(w io.Writer, e suppression.Entry) {
	what := "address"
	if e.Domain() {
		what = "domain"
	}
	fmt.Fprintf(w, "  %s entry %s\n", what, e.Address)
	fmt.Fprintf(w, "    reason:     %s\n    scope:      %s\n", e.Reason, e.Scope)
	if e.Code != 0 || e.Enhanced != "" || e.Detail != "" {
		reply := strings.TrimSpace(strings.Join([]string{codeString(e.Code), e.Enhanced, e.Detail}, " "))
		fmt.Fprintf(w, "    detail:     %s\n", reply)
	}
	if e.Campaign != "" || e.Lane != "" {
		fmt.Fprintf(w, "    campaign:   %s (lane %s)\n", orDash(e.Campaign), orDash(e.Lane))
	}
	fmt.Fprintf(w, "    source:     %s\n    first seen: %s\n    last seen:  %s\n",
		orDash(e.Source), e.FirstSeen.Format(time.RFC3339), e.LastSeen.Format(time.RFC3339))
}

func codeString(c int) string {
	if c == 0 {
		return ""
	}
	return strconv.Itoa(c)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cmdCtx) filter() (suppression.Filter, error) {
	var f suppression.Filter
	if c.reason != "" {
		r, err := suppression.ParseReason(c.reason)
		if err != nil {
			return f, usagef("--reason: %v", err)
		}
		f.Reason = r
	}
	if c.since != "" {
		t, err := parseSince(c.since, time.Now())
		if err != nil {
			return f, usagef("%v", err)
		}
		f.Since = t
	}
	return f, nil
}

// parseSince reads an absolute time (RFC 3339 or a date, UTC) or a
// duration back from now ("36h", "7d").
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a time (2025-03-01, 2025-03-01T12:00:00Z) or a duration (36h, 7d)", s)
}

func runList(ctx context.Context, c *cmdCtx) error {
	if err := c.noPos(); err != nil {
		return err
	}
	f, err := c.filter()
	if err != nil {
		return err
	}
	n := 0
	if c.json {
		enc, _ := bulk.NewEncoder(c.stdout, bulk.FormatJSONL)
		err = c.l.Scan(ctx, f, func(e suppression.Entry) error { n++; return enc.Write(e) })
		if ferr := enc.Flush(); err == nil {
			err = ferr
		}
	} else {
		listRow(c.stdout, "ADDRESS", "REASON", "SCOPE", "LAST SEEN", "SOURCE", "DETAIL")
		err = c.l.Scan(ctx, f, func(e suppression.Entry) error {
			n++
			return listRow(c.stdout, e.Address, string(e.Reason), string(e.Scope), e.LastSeen.Format(time.RFC3339),
				orDash(e.Source), strings.TrimSpace(codeString(e.Code)+" "+e.Detail))
		})
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "%d entries\n", n)
	return nil
}

// listRow writes one line of list's table (the header is one too).
func listRow(w io.Writer, addr, reason, scope, lastSeen, src, detail string) error {
	line := fmt.Sprintf("%-40s %-17s %-9s %-20s  %-11s %s", addr, reason, scope, lastSeen, src, detail)
	_, err := fmt.Fprintln(w, strings.TrimRight(line, " "))
	return err
}

// checkFormat refuses an unknown --format before any work is done.
func checkFormat(f string) error {
	if f != bulk.FormatCSV && f != bulk.FormatJSONL {
		return usagef("--format %q: want %s or %s", f, bulk.FormatCSV, bulk.FormatJSONL)
	}
	return nil
}

func runImport(ctx context.Context, c *cmdCtx) error {
	path, err := c.onePos("FILE")
	if err != nil {
		return err
	}
	reason, err := suppression.ParseReason(c.reason)
	if err != nil {
		return usagef("--reason: %v", err)
	}
	if c.format != "" {
		if err := checkFormat(c.format); err != nil {
			return err
		}
	}
	format := c.format
	if format == "" {
		format = bulk.FormatCSV
		switch strings.ToLower(filepath.Ext(path)) {
		case ".jsonl", ".ndjson", ".json":
			format = bulk.FormatJSONL
		}
	}
	var in io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err // *PathError names the file
		}
		defer f.Close()
		in = f
	}
	res, err := bulk.Import(ctx, c.l, in, format, bulk.Defaults{Reason: reason, Source: "import"})
	var le *bulk.LineError
	if errors.As(err, &le) { // the header: nothing was imported
		return fmt.Errorf("%s:%d: %s", path, le.Line, le.Err)
	}
	fmt.Fprintf(c.stdout, "%s: %d added, %d updated, %d unchanged, %d bad lines\n", path, res.Added, res.Updated, res.Unchanged, res.BadCount)
	for _, b := range res.Bad {
		fmt.Fprintf(c.stderr, "%s:%d: %s\n", path, b.Line, b.Err)
	}
	if more := res.BadCount - len(res.Bad); more > 0 {
		fmt.Fprintf(c.stderr, "%s: ... and %d more bad lines\n", path, more)
	}
	if err != nil {
		return err
	}
	if res.BadCount > 0 {
		return fmt.Errorf("%s: %d bad lines skipped (listed above); the rest was imported", path, res.BadCount)
	}
	return nil
}

func runExport(ctx context.Context, c *cmdCtx) (err error) {
	if err := c.noPos(); err != nil {
		return err
	}
	if err := checkFormat(c.format); err != nil {
		return err
	}
	f, err := c.filter()
	if err != nil {
		return err
	}
	w := c.stdout
	if c.out != "" {
		// Write beside the target and rename on success, so a failed
		// export never leaves a truncated file that looks complete.
		tmp, err := os.CreateTemp(filepath.Dir(c.out), "."+filepath.Base(c.out)+".*")
		if err != nil {
			return err
		}
		defer func() {
			if cerr := tmp.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), c.out)
			}
			if err != nil {
				_ = os.Remove(tmp.Name())
			}
		}()
		w = tmp
	}
	n, err := bulk.Export(ctx, c.l, w, c.format, f)
	if err != nil {
		return err
	}
	dest := "stdout"
	if c.out != "" {
		dest = c.out
	}
	fmt.Fprintf(c.stderr, "exported %d entries to %s\n", n, dest)
	return nil
}
