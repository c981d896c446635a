// Package suppress implements `campaignctl suppression`: the operator's commands
// to add, remove, explain, list, import and export suppression entries.
package suppress

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/sluice-mta/sluice/pkg/suggest"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/suppression/bulk"
)

// ErrNotSuppressed is returned by check (and remove) when the address is not
// on the list, after saying so on stdout: the caller should exit with
// status 1 without printing more, like grep when nothing matches, so
// scripts can test membership.
var ErrNotSuppressed = errors.New("not suppressed")

// ErrUsage marks a command line that could not be understood (a missing
// argument, an unknown flag or flag value): the caller should exit 2.
var ErrUsage = errors.New("bad usage")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// cmdError is what Run returns for a failed command: "NAME: what went
// wrong", once. The suppression packages name themselves and their
// operation in their errors ("suppression: add: invalid address ..."),
// which would repeat what campaignctl has already said.
type cmdError struct {
	msg string
	err error
}

func (e *cmdError) Error() string { return e.msg }
func (e *cmdError) Unwrap() error { return e.err }

func commandError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "suppression: ")
	if !strings.HasPrefix(msg, name+": ") && !strings.HasPrefix(msg, name+" ") {
		msg = name + ": " + msg
	}
	return &cmdError{msg, err}
}

// source and actor recorded for what the operator does.
const source = "campaignctl"

type command struct {
	name, args, summary, example string
	run                          func(ctx context.Context, c *cmdCtx) error
	flags                        func(fs *flag.FlagSet, c *cmdCtx)
}

type cmdCtx struct {
	l              *suppression.List
	stdout, stderr io.Writer
	pos            []string
	// flag values
	reason, scope, detail, why, since, format, out string
	json                                           bool
}

var commands = []command{
	{name: "add", args: "ADDRESS|@DOMAIN --reason R [--scope global|marketing] [--detail TEXT]",
		summary: "suppress an address or a whole domain",
		example: "campaignctl suppression add bob@example.test --reason manual --detail 'asked by phone'\n" +
			"  campaignctl suppression add @example.test --reason hard_bounce --scope global",
		flags: func(fs *flag.FlagSet, c *cmdCtx) {
			fs.StringVar(&c.reason, "reason", "", "hard_bounce, unsubscribe, complaint, manual or soft_bounce_limit (required)")
			fs.StringVar(&c.scope, "scope", "", "global (all mail) or marketing (marketing only); default: marketing for unsubscribe and complaint, else global")
			fs.StringVar(&c.detail, "detail", "", "why, in words")
		}, run: runAdd},
	{name: "remove", args: "ADDRESS|@DOMAIN [--why TEXT]",
		summary: "remove an entry (recorded in the audit trail); exits 1 if there was none",
		example: "campaignctl suppression remove bob@example.test --why 'mailbox exists again'",
		flags:   func(fs *flag.FlagSet, c *cmdCtx) { fs.StringVar(&c.why, "why", "", "reason for the audit trail") },
		run:     runRemove},
	{name: "check", args: "ADDRESS|@DOMAIN",
		summary: "say whether and why an address is suppressed, with its audit trail; exits 1 if it is not",
		example: "campaignctl suppression check bob@example.test",
		flags:   func(*flag.FlagSet, *cmdCtx) {}, run: runCheck},
	{name: "list", args: "[--reason R] [--since TIME|DURATION] [--json]",
		summary: "list entries (unordered; use export for a sorted file)",
		example: "campaignctl suppression list --reason hard_bounce --since 7d",
		flags: func(fs *flag.FlagSet, c *cmdCtx) {
			filterFlags(fs, c)
			fs.BoolVar(&c.json, "json", false, "one JSON object per line, as export --format jsonl")
		}, run: runList},
	{name: "import", args: "FILE [--format csv|jsonl] [--reason R]",
		summary: "add the entries of a CSV or JSONL file (as written by export, or a plain list of addresses); bad lines are reported and skipped",
		example: "campaignctl suppression import old-esp-bounces.csv --reason hard_bounce\n" +
			"  (a CSV file is a plain list of addresses, one per line, or has a header line naming its columns;\n" +
			"  the address column may be called email, Email Address, E-mail, mail or address)",
		flags: func(fs *flag.FlagSet, c *cmdCtx) {
			fs.StringVar(&c.format, "format", "", "csv or jsonl (default: from the file name, else csv)")
			fs.StringVar(&c.reason, "reason", string(bulk.DefaultReason), "the reason of lines that give none")
		}, run: runImport},
	{name: "export", args: "[--format csv|jsonl] [--reason R] [--since TIME|DURATION] [-o FILE]",
		summary: "write entries sorted by address, to stdout or a file",
		example: "campaignctl suppression export --reason unsubscribe -o unsubscribes.csv",
		flags: func(fs *flag.FlagSet, c *cmdCtx) {
			fs.StringVar(&c.format, "format", bulk.FormatCSV, "csv or jsonl")
			filterFlags(fs, c)
			fs.StringVar(&c.out, "o", "", "write to FILE (replaced only when the export succeeded) instead of stdout")
		}, run: runExport},
}

func filterFlags(fs *flag.FlagSet, c *cmdCtx) {
	fs.StringVar(&c.reason, "reason", "", "only entries with this reason")
	fs.StringVar(&c.since, "since", "", "only entries seen since TIME (2025-03-01, RFC 3339) or DURATION ago (36h, 7d)")
}

// Run executes one `campaignctl suppression` subcommand, args[0] being its
// name. Results go to stdout, counts and warnings to stderr. The error is
// one line for the caller to print, starting with the command's name;
// ErrUsage means "exit 2"; ErrNotSuppressed means "exit 1, but nothing
// went wrong, and the answer is printed". --help prints the command's
// usage and returns nil.
func Run(ctx context.Context, l *suppression.List, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return usagef("missing command")
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		usage(stdout)
		return nil
	}
	for _, cmd := range commands {
		if cmd.name != name {
			continue
		}
		c := &cmdCtx{l: l, stdout: stdout, stderr: stderr}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(io.Discard) // errors are returned as one line instead
		cmd.flags(fs, c)
		pos, err := parseInterspersed(fs, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: campaignctl suppression %s %s\n\n%s.\n\nexample:\n  %s\n", name, cmd.args, cmd.summary, cmd.example)
			if hasFlags(fs) {
				fmt.Fprintln(stdout, "\nflags:")
				fs.SetOutput(stdout)
				fs.PrintDefaults()
			}
			return nil
		}
		if err != nil {
			return usagef("%s: %v (see %s --help)", name, err, name)
		}
		c.pos = pos
		if err := cmd.run(ctx, c); err != nil {
			return commandError(name, err)
		}
		return nil
	}
	usage(stderr)
	return usagef("unknown command %q%s", name, suggest.Hint(name, names()))
}

func names() []string {
	out := make([]string, len(commands))
	for i, c := range commands {
		out[i] = c.name
	}
	return out
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: campaignctl suppression COMMAND [ARGS]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n          %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"campaignctl suppression COMMAND --help\" for an example.")
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseInterspersed lets flags follow positional arguments ("add
// bob@example.test --reason manual"), which the flag package alone does
// not; "--" still ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// onePos checks that exactly one positional argument was given.
func (c *cmdCtx) onePos(what string) (string, error) {
	switch {
	case len(c.pos) == 0:
		return "", usagef("missing %s", what)
	case len(c.pos) > 1:
		return "", usagef("one %s expected, got %d arguments (%s)", what, len(c.pos), strings.Join(c.pos, " "))
	}
	return c.pos[0], nil
}

func (c *cmdCtx) noPos() error {
	if len(c.pos) > 0 {
		return usagef("unexpected argument %q", c.pos[0])
	}
	return nil
}

// actor names the operator in the audit trail.
func actor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		return source
	}
	return source + ":" + name
}
