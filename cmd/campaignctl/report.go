package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/suggest"

	"github.com/sluice-mta/sluice/pkg/report"
	"github.com/sluice-mta/sluice/pkg/store"
)

// outcomes are the values a record's outcome takes.
var outcomes = []string{string(outcome.Queued), string(outcome.Deferred), string(outcome.Delivered), string(outcome.Bounced),
	string(outcome.Failed), string(outcome.Suppressed), string(outcome.Cancelled)}

func cmdReport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "report", "[flags] ID",
		"Writes one line per recipient with its latest outcome, as CSV with the columns\n"+
			"  "+strings.Join(report.Columns, ",")+"\n"+
			"outcome is queued, deferred, delivered, bounced, failed, suppressed or cancelled; reply is the\n"+
			"receiver's last reply, or sluice's reason when none answered (suppressed, cancelled, expired);\n"+
			"provider is the MX host that answered, else the recipient's domain (the same key in --json);\n"+
			"last_attempt is RFC 3339 UTC; source is the egress source (engine config sources) the last\n"+
			"attempt left from.\n"+
			"Records are read in batches (bounded memory, any size), in no particular order.",
		"campaignctl report welcome-2025 -o welcome-report.csv")
	out := fs.String("o", "", "write to FILE (replaced only when the report is complete) instead of stdout")
	asJSON := fs.Bool("json", false, "JSON Lines instead of CSV: one object per recipient")
	only := fs.String("outcome", "", "only recipients with this outcome (e.g. bounced)")
	id, err := oneArg(fs, args, "campaign ID")
	if err != nil {
		return err
	}
	if *only != "" && !slices.Contains(outcomes, *only) {
		return fmt.Errorf("-outcome %q: not an outcome%s (want one of %s): %w",
			*only, suggest.Hint(*only, outcomes), strings.Join(outcomes, ", "), errUsage)
	}
	rdb, ks, err := e.redis(ctx)
	if err != nil {
		return err
	}
	st := store.New(rdb, ks)
	if _, err := st.State(ctx, id); err != nil {
		return noCampaign(err, id)
	}
	var w io.Writer = e.stdout
	var tmp *os.File
	if *out != "" {
		// A temporary file beside the target, renamed at the end: an
		// interrupted report never leaves a truncated file under the name.
		if tmp, err = os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*"); err != nil {
			return err
		}
		defer os.Remove(tmp.Name()) // after a successful rename this finds nothing
		defer tmp.Close()
		w = tmp
	}
	var rw report.Writer
	if *asJSON {
		rw = report.NewJSONL(w)
	} else if rw, err = report.NewCSV(w); err != nil {
		return err
	}
	n := 0
	err = report.Scan(ctx, rdb, st.Tally(id), 0, func(r report.Row) error {
		if *only != "" && r.Outcome != *only {
			return nil
		}
		n++
		return rw.Write(r)
	})
	if err != nil {
		return err
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	if tmp == nil {
		return nil
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s to %s\n", count(n, "recipient"), *out)
	return nil
}
