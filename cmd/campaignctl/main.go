// Command campaignctl is the marketing and ops tool for sluice: check,
// preview and launch campaigns, pause, resume or cancel them, follow their
// progress, export per-recipient reports, and manage the suppression list.
//
//	campaignctl lint campaigns/welcome.yaml
//	campaignctl launch campaigns/welcome.yaml --at +10m
//	campaignctl status welcome-2025 --watch
//	campaignctl report welcome-2025 -o welcome.csv
//
// Exit status: 0 success, 1 failure, 2 usage error.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
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
	redisCluster   string
	configPath     string
	prefix         string
	rdb            redis.UniversalClient
	cfg            *config.Config
}

// config returns the engine configuration given with -config, or nil
// when there is none: lint and preview then say what they cannot know.
func (e *env) config() (*config.Config, error) {
	if e.configPath == "" || e.cfg != nil {
		return e.cfg, nil
	}
	cfg, err := config.Load(e.configPath)
	if err != nil {
		return nil, err
	}
	e.cfg = cfg
	return cfg, nil
}

// redis connects on first use to one server or a Redis Cluster:
// -redis or -redis-cluster, then REDIS_URL or REDIS_CLUSTER, then the
// engine config given with -config, then the embedded demo address.
func (e *env) redis(ctx context.Context) (redis.UniversalClient, keyspace.Space, error) {
	r, err := e.redisConfig()
	if err != nil {
		return nil, "", err
	}
	if e.rdb == nil {
		rdb, err := r.Connect(ctx)
		if err != nil {
			hint := ""
			if r.Embedded() {
				hint = " (no -redis, -redis-cluster, REDIS_URL, REDIS_CLUSTER or -config given: is a demo engine running?)"
			}
			return nil, "", fmt.Errorf("redis %s: %w%s", r.Where(), err, hint)
		}
		e.rdb = rdb
	}
	return e.rdb, keyspace.Space(r.Prefix), nil
}

// redisConfig is the Redis settings of -config (with the environment's
// REDIS_URL or REDIS_CLUSTER applied), or of the environment alone, with
// the global flags over them.
func (e *env) redisConfig() (config.Redis, error) {
	var r config.Redis
	cfg, err := e.config()
	if err != nil {
		return r, err
	}
	if cfg != nil {
		r = cfg.Redis
	} else if err := r.ApplyEnv(); err != nil {
		return r, fmt.Errorf("%w: %w", err, errUsage)
	}
	switch {
	case e.redisURL != "" && e.redisCluster != "":
		return r, fmt.Errorf("-redis and -redis-cluster both given: one server or one cluster: %w", errUsage)
	case e.redisURL != "":
		r.URL, r.Cluster = e.redisURL, nil
	case e.redisCluster != "":
		r.URL, r.Cluster = "", config.SplitAddrs(e.redisCluster)
		if err := r.Validate(); err != nil {
			var fe *config.FieldError
			if errors.As(err, &fe) {
				err = errors.New(fe.Msg)
			}
			return r, fmt.Errorf("-redis-cluster: %w: %w", err, errUsage)
		}
	}
	if e.prefix != "" {
		r.Prefix = e.prefix
	}
	if r.Prefix == "" {
		r.Prefix = "sluice"
	}
	return r, nil
}

// quietRedis drops go-redis's own log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands, and the order usage lists them in: a campaign's life.
var (
	commands = map[string]command{
		"lint":        {"check a campaign file, its recipients and the From domain's DNS, without enqueuing", cmdLint},
		"preview":     {"print the exact message one recipient would get", cmdPreview},
		"launch":      {"validate a campaign file and enqueue its recipients, now or --at a time", cmdLaunch},
		"list":        {"list campaigns with their state and progress", cmdList},
		"status":      {"show campaign progress: counts, rate, providers, ETA (--watch to follow)", cmdStatus},
		"pause":       {"stop sending a campaign (its jobs are kept)", cmdPause},
		"resume":      {"send a paused campaign again", cmdResume},
		"cancel":      {"stop a campaign for good: the rest is recorded as cancelled", cmdCancel},
		"report":      {"write every recipient's outcome as CSV", cmdReport},
		"delete":      {"remove a finished or cancelled campaign's data (not the suppression list)", cmdDelete},
		"suppression": {"manage the suppression list: add, remove, check, list, import, export", cmdSuppression},
		"send":        {"queue one transactional message (test a route end to end)", cmdSend},
		"limits":      {"show the throttle's per-provider limits (per egress source with --source); pin or reset them", cmdLimits},
		"sources":     {"list the egress sources: pools and, per provider, throttle state, warm-up day and today's volume against the cap", cmdSources},
		"feedback":    {"classify bounce, complaint and auto-reply message files (feedback classify)", cmdFeedback},

		"hash-password": {"print a bcrypt hash for submission.users[].password_hash (--token: a new API token and its sha256)", cmdHashPassword},
	}
	order = []string{"lint", "preview", "launch", "list", "status", "pause", "resume", "cancel", "report", "delete", "suppression", "send", "limits", "sources", "feedback", "completion"}
)

// errUsage marks bad invocations (exit 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	redis.SetLogger(quietRedis{}) // a failed command says why; go-redis's dial lines would repeat it
	e := &env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("campaignctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.redisURL, "redis", "", "Redis URL of one server (default: $REDIS_URL, the -config file's redis.url, or the demo engine's embedded Redis)")
	fs.StringVar(&e.redisCluster, "redis-cluster", "", "seed nodes of a Redis Cluster, comma-separated `host:port,...` (default: $REDIS_CLUSTER, the -config file's redis.cluster)")
	fs.StringVar(&e.configPath, "config", "", "engine configuration file: Redis settings, and the DKIM keys and unsubscribe settings lint and preview check")
	fs.StringVar(&e.prefix, "prefix", "", "Redis key prefix (default: from -config, else sluice)")
	// Parse into a buffer: -h prints the usage on stdout (it is what was
	// asked for), a bad flag prints its error and the usage on stderr.
	var parseOut bytes.Buffer
	fs.SetOutput(&parseOut)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		fs.SetOutput(stderr)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			usage(stdout, fs)
			return 0
		}
		_, _ = io.Copy(stderr, &parseOut)
		usage(stderr, fs)
		return 2
	}
	fs.SetOutput(stderr)
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return 2
	}
	name := fs.Arg(0)
	if name == "help" {
		fs.SetOutput(stdout)
		usage(stdout, fs)
		return 0
	}
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
	rest, err := globalsAfter(fs, fs.Args()[1:])
	if err != nil {
		fmt.Fprintln(stderr, "campaignctl "+name+":", err)
		return 2
	}
	if wantsHelp(rest) {
		e.stderr = stdout // COMMAND -h: the help is the output
	}
	if err := cmd.run(ctx, e, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "campaignctl "+name+":", strings.TrimSuffix(err.Error(), ": usage"))
			return 2
		}
		if errors.Is(err, errSilent) {
			return 1 // the command has said why
		}
		fmt.Fprintln(stderr, "campaignctl "+name+":", err)
		return 1
	}
	return 0
}

// errSilent fails a command that has already explained itself (lint's
// findings), so run adds nothing.
var errSilent = errors.New("failed")

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: campaignctl [global flags] COMMAND [flags] [args]\n\ncommands:")
	for _, n := range order {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nRun campaignctl COMMAND -h for a command's flags and an example.\nExit status: 0 success, 1 failure, 2 usage error.")
}

// globals are the global flags also accepted after the command name
// (campaignctl status -redis URL ID), as operators tend to write them.
var globals = []string{"redis", "redis-cluster", "config", "prefix"}

// globalsAfter takes the global flags out of a command's arguments and
// sets them on fs, leaving the rest, in order, to the command. Arguments
// after "--" are left alone.
func globalsAfter(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i:]...), nil
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !slices.Contains(globals, name) {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			value = args[i]
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("-%s: %w", name, err)
		}
	}
	return rest, nil
}
