// Command campaignctl is the marketing and ops tool for sluice: launch
// campaigns, watch their status, manage the suppression list.
//
//	campaignctl launch campaigns/welcome.yaml
//	campaignctl status welcome --json
//
// Exit status: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// env is what every subcommand gets: global settings and output streams.
type env struct {
	stdout, stderr io.Writer
	redisURL       string
	configPath     string
	prefix         string
	rdb            *redis.Client
}

// redis connects on first use: -redis, then REDIS_URL, then the engine
// config given with -config, then the embedded demo address.
func (e *env) redis(ctx context.Context) (*redis.Client, keyspace.Space, error) {
	r := config.Redis{URL: e.redisURL, Prefix: e.prefix}
	if r.URL == "" {
		r.URL = os.Getenv("REDIS_URL")
	}
	if e.configPath != "" {
		cfg, err := config.Load(e.configPath)
		if err != nil {
			return nil, "", err
		}
		if r.URL == "" {
			r.URL = cfg.Redis.URL
		}
		if r.Prefix == "" {
			r.Prefix = cfg.Redis.Prefix
		}
	}
	if r.Prefix == "" {
		r.Prefix = "sluice"
	}
	if e.rdb == nil {
		opts, err := r.Options()
		if err != nil {
			return nil, "", err
		}
		e.rdb = redis.NewClient(opts)
		if err := e.rdb.Ping(ctx).Err(); err != nil {
			hint := ""
			if r.URL == "" {
				hint = " (no -redis, REDIS_URL or -config given: is a demo engine running?)"
			}
			return nil, "", fmt.Errorf("redis %s: %w%s", opts.Addr, err, hint)
		}
	}
	return e.rdb, keyspace.Space(r.Prefix), nil
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = map[string]command{
	"launch":      {"validate a campaign file and enqueue its recipients", cmdLaunch},
	"status":      {"show campaign progress", cmdStatus},
	"suppression": {"manage the suppression list: add, remove, check, list, import, export", cmdSuppression},
}

// errUsage marks bad invocations (exit 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("campaignctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.redisURL, "redis", "", "Redis URL (default: $REDIS_URL, the -config file's redis.url, or the demo engine's embedded Redis)")
	fs.StringVar(&e.configPath, "config", "", "engine configuration file to take Redis settings from")
	fs.StringVar(&e.prefix, "prefix", "", "Redis key prefix (default: from -config, else sluice)")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return 2
	}
	name := fs.Arg(0)
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "campaignctl: unknown command %q (try campaignctl -h)\n", name)
		return 2
	}
	defer func() {
		if e.rdb != nil {
			_ = e.rdb.Close()
		}
	}()
	if err := cmd.run(ctx, e, fs.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "campaignctl "+name+":", strings.TrimSuffix(err.Error(), ": usage"))
			return 2
		}
		fmt.Fprintln(stderr, "campaignctl "+name+":", err)
		return 1
	}
	return 0
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: campaignctl [global flags] COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nRun campaignctl COMMAND -h for a command's flags and an example.")
}

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
