package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"

	"golang.org/x/term"

	"github.com/sluice-mta/sluice/pkg/store"
)

// newFlags makes a subcommand's flag set with a usage text and example.
func newFlags(e *env, name, args, about, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: campaignctl %s %s\n\n%s\n\nflags:\n", name, args, about)
		fs.PrintDefaults()
		fmt.Fprintf(e.stderr, "\nexample:\n  %s\n", example)
	}
	return fs
}

// parse parses flags that may appear before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", err, errUsage)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// oneArg parses and wants exactly one positional argument, named what.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("want exactly one %s (see campaignctl %s -h): %w", what, fs.Name(), errUsage)
	}
	return pos[0], nil
}

// wantsHelp reports whether args ask for help, so commands that hand their
// arguments to another package can show it without connecting to Redis.
func wantsHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "-h" || a == "-help" || a == "--help"
	})
}

// noCampaign turns store.ErrNotFound into a message that says what to do.
func noCampaign(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no campaign %q (campaignctl list shows them)", id)
	}
	return err
}

// isTerminal reports whether w is a terminal: progress bars redraw in
// place there, and pipes and log files get plain periodic lines instead.
func isTerminal(w any) bool {
	// A character device is not enough: /dev/null is one too.
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// configFlag lets commands that read the engine config take -config after
// the command name too (campaignctl lint -config engine.yaml FILE).
func configFlag(e *env, fs *flag.FlagSet) {
	fs.Func("config", "engine configuration file (same as the global -config)", func(s string) error {
		e.configPath = s
		return nil
	})
}
