// Package limits is `campaignctl limits`: it shows the throttle's shared state
// per provider and lets an operator pin or reset a provider's limits.
// Changes are written to Redis and running engines apply them at their
// next sync (a quarter of a second), without a restart.
package limits

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suggest"
	"github.com/sluice-mta/sluice/pkg/text"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

const usage = `usage: campaignctl limits COMMAND [flags]

Commands:
  show [--json] [--source S | --domain D]
                         every provider's current rate and limits, connections
                         in use, state, and its last deferral reply
  set PROVIDER [--source S | --domain D] [--rate R] [--concurrency C] [--for DURATION] [--new]
                         pin the rate (messages/s, all engines together) and/or
                         the connections; adaptation pauses while pinned; without
                         --for until "reset"
  reset PROVIDER [--source S | --domain D]
                         forget what was learnt and decided: rate and connections
                         back to their start values; suspensions, caps and pins end

Examples:
  campaignctl limits show
  campaignctl limits set google --rate 20 --concurrency 3 --for 1h
  campaignctl limits reset yahoo
  campaignctl limits show --source ip2
  campaignctl limits set google --source ip2 --rate 5

Each egress source with an address of its own has its own state toward a
provider, shown as PROVIDER@SOURCE (providers limit per sending IP);
--source S picks source S's: show lists only S's, set and reset act on
PROVIDER@S. Sources on the default route share PROVIDER's own state.
A sending domain that got a domain-scoped deferral (Gmail's 4.7.28 about
the DKIM domain, 5.7.515) has its own state toward the provider, consulted
besides the source's for that domain's mail: PROVIDER@d=DOMAIN; --domain D
picks it.

PROVIDER is a name from "limits show": a provider (google, yahoo...) or a
destination's own key (mx:mx1.example.com,mx2.example.com, route:HOST). set
refuses other names (a typo would pin nothing) unless --new is given; reset
fails when the name has no state. Running engines
apply changes within a second. A suspension holds jobs until it ends; jobs
already postponed to its end keep that time after a reset.

RATE/s is the rate in force, kept within MIN-MAX unless pinned (a pin is
the operator's and may lie outside). In --json, "ceiling" is not a limit:
it is the accepted rate measured at the last cut; the rate recovers to just
under it and then probes above it while no deferral comes, so a rate above
the ceiling is expected.
`

// ErrUsage reports a command line that could not be understood.
var ErrUsage = errors.New("limits: bad usage")

// ErrNothing reports a reset of a key that has no state.
var ErrNothing = errors.New("nothing to reset")

// knownNames are the names set accepts without --new: the shipped
// providers, names (from the engine configuration), and the keys engines
// have used within the last day, sorted.
func knownNames(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, names []string) ([]string, error) {
	known := slices.Clone(names)
	if f, err := throttle.LoadFile(""); err == nil {
		for _, p := range f.Providers {
			known = append(known, p.Name)
		}
	}
	used, err := throttle.Known(ctx, rdb, ks)
	if err != nil {
		return nil, err
	}
	known = append(known, used...)
	slices.Sort(known)
	return slices.Compact(known), nil
}

// isDestinationKey reports whether name is a destination's own throttle
// key, as engines name those not rolled up into a provider: its MX host
// set (mx:HOST,HOST) or its route (route:HOST).
func isDestinationKey(name string) bool {
	for _, p := range []string{"mx:", "route:"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && !strings.ContainsAny(rest, " \t") {
			return true
		}
	}
	return false
}

// Run runs `limits` with args (the words after "limits"), knowing the
// shipped providers.
func Run(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, args []string, stdout, stderr io.Writer) error {
	return RunNames(ctx, rdb, ks, nil, args, stdout, stderr)
}

// RunNames is Run that also knows names: provider names from the engine
// configuration (its providers file and throttle.providers), which set
// accepts besides the shipped providers and the keys engines have used.
func RunNames(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, names []string, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	switch args[0] {
	case "show":
		return show(ctx, rdb, ks, args[1:], stdout, stderr)
	case "set":
		return set(ctx, rdb, ks, names, args[1:], stdout, stderr)
	case "reset":
		return reset(ctx, rdb, ks, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "limits: unknown command %q\n\n%s", args[0], usage)
	return ErrUsage
}

func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("limits "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	return fs
}

// parse parses flags placed before or after one positional PROVIDER.
func parse(fs *flag.FlagSet, args []string, wantName bool) (string, error) {
	var name string
	if wantName && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", ErrUsage
	}
	rest := fs.Args()
	if wantName && name == "" && len(rest) > 0 {
		name, rest = rest[0], rest[1:]
		if err := fs.Parse(rest); err != nil {
			return "", ErrUsage
		}
		rest = fs.Args()
	}
	if len(rest) > 0 || (wantName && name == "") {
		fs.Usage()
		return "", ErrUsage
	}
	return name, nil
}

func show(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, args []string, stdout, stderr io.Writer) error {
	fs := flags("show", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	source := fs.String("source", "", "only this egress source's state (PROVIDER@SOURCE)")
	domain := fs.String("domain", "", "only this sending domain's state (PROVIDER@d=DOMAIN)")
	if _, err := parse(fs, args, false); err != nil {
		return helpOK(err)
	}
	if *domain != "" {
		_, *source = throttle.SplitBucket(throttle.DomainBucket("k", *domain))
	}
	st, err := throttle.Inspect(ctx, rdb, ks)
	if err != nil {
		return err
	}
	if *source != "" {
		st = slices.DeleteFunc(st, func(s throttle.Status) bool { return s.Source != *source })
	}
	if *asJSON {
		if st == nil {
			st = []throttle.Status{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROVIDER\tSTATE\tRATE/s\tMIN-MAX\tCONNS\tSESSIONS\tLAST DEFERRAL")
	for _, s := range st {
		last := "-"
		if s.LastDeferral != "" {
			last = fmt.Sprintf("%s ago: %s", ago(now, s.LastDeferralAt), text.Clip(strings.Join(strings.Fields(s.LastDeferral), " "), 70))
		}
		span := "-"
		if s.MaxRate > 0 {
			span = fmt.Sprintf("%g-%g", s.MinRate, s.MaxRate)
		}
		fmt.Fprintf(w, "%s\t%s\t%.1f\t%s\t%d/%d\t%d\t%s\n", s.Provider, state(s, now), s.Rate, span,
			s.InUse, s.Connections, s.Sessions, last)
	}
	return w.Flush()
}

// state renders the state with how long it lasts and why.
func state(s throttle.Status, now time.Time) string {
	switch s.State {
	case "suspended":
		return fmt.Sprintf("suspended %s (%s)", left(now, s.SuspendedUntil), s.SuspendedBy)
	case "capped":
		return fmt.Sprintf("capped %s (%s)", left(now, s.CappedUntil), s.CappedBy)
	case "pinned":
		if s.PinnedUntil.IsZero() {
			return "pinned"
		}
		return "pinned " + left(now, s.PinnedUntil)
	}
	return s.State
}

func left(now, until time.Time) string { return until.Sub(now).Round(time.Second).String() }

func ago(now, t time.Time) string { return max(now.Sub(t), 0).Round(time.Second).String() }

func set(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, names []string, args []string, stdout, stderr io.Writer) error {
	fs := flags("set", stderr)
	isNew := fs.Bool("new", false, "pin a provider name no engine and no providers file knows (yet)")
	rate := fs.Float64("rate", 0, "messages per second, all engines together")
	conc := fs.Int("concurrency", 0, "simultaneous connections, all engines together")
	dur := fs.Duration("for", 0, "how long the pin lasts (default: until reset)")
	source := fs.String("source", "", "pin this egress source's state toward PROVIDER (PROVIDER@SOURCE)")
	domain := fs.String("domain", "", "pin this sending domain's state toward PROVIDER (PROVIDER@d=DOMAIN)")
	name, err := parse(fs, args, true)
	if err != nil {
		return helpOK(err)
	}
	if *rate < 0 || *conc < 0 || *dur < 0 || (*rate == 0 && *conc == 0) {
		fmt.Fprintln(stderr, "limits set: give --rate and/or --concurrency, positive")
		return ErrUsage
	}
	known, err := knownNames(ctx, rdb, ks, names)
	if err != nil {
		return err
	}
	if !*isNew && !slices.Contains(known, name) && !isDestinationKey(name) {
		fmt.Fprintf(stderr, "limits set: unknown provider %q%s; give --new to pin it anyway (known: %s)\n",
			name, suggest.Hint(name, known), strings.Join(known, ", "))
		return ErrUsage
	}
	name = bucketName(name, *source, *domain)
	warnUnknown(ctx, rdb, ks, name, stderr)
	if err := throttle.Set(ctx, rdb, ks, name, *rate, *conc, *dur); err != nil {
		return err
	}
	wake(ctx, rdb, ks, throttle.BaseKey(name))
	var what []string
	if *rate > 0 {
		what = append(what, fmt.Sprintf("rate %g/s", *rate))
	}
	if *conc > 0 {
		what = append(what, fmt.Sprintf("%d connections", *conc))
	}
	until := "until reset"
	if *dur > 0 {
		until = "for " + dur.String()
	}
	fmt.Fprintf(stdout, "%s: pinned to %s %s\n", name, strings.Join(what, ", "), until)
	return nil
}

func reset(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, args []string, stdout, stderr io.Writer) error {
	fs := flags("reset", stderr)
	source := fs.String("source", "", "reset this egress source's state toward PROVIDER (PROVIDER@SOURCE)")
	domain := fs.String("domain", "", "reset this sending domain's state toward PROVIDER (PROVIDER@d=DOMAIN)")
	name, err := parse(fs, args, true)
	if err != nil {
		return helpOK(err)
	}
	name = bucketName(name, *source, *domain)
	had, err := throttle.Has(ctx, rdb, ks, name)
	if err != nil {
		return err
	}
	if !had {
		known, _ := throttle.Known(ctx, rdb, ks)
		return fmt.Errorf("reset %q: %w: no engine has throttle state for it%s (limits show lists the names in use)", name, ErrNothing, suggest.Hint(name, known))
	}
	if err := throttle.Reset(ctx, rdb, ks, name); err != nil {
		return err
	}
	wake(ctx, rdb, ks, throttle.BaseKey(name))
	fmt.Fprintf(stdout, "%s: reset to its start limits\n", name)
	return nil
}

// warnUnknown flags a likely typo; setting a provider no engine has used
// yet is allowed (it applies when one does).
func warnUnknown(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, name string, stderr io.Writer) {
	known, err := throttle.Known(ctx, rdb, ks)
	if err != nil {
		return
	}
	for _, k := range known {
		if k == name {
			return
		}
	}
	fmt.Fprintf(stderr, "limits: note: no engine has used %q in the last day (known: %s)\n", name, strings.Join(known, ", "))
}

func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// wake makes the jobs waiting for name due at once, rather than at a time
// computed from its old limits (engines also do when they see the change).
func wake(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, name string) {
	_, _ = streams.New(rdb, ks, "campaignctl").Wake(ctx, name)
}

// bucketName is the throttle bucket of name for --source or --domain.
func bucketName(name, source, domain string) string {
	if domain != "" {
		return throttle.DomainBucket(name, domain)
	}
	return throttle.Bucket(name, source)
}
