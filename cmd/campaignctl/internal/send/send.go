// Package send is `campaignctl send`: it queues one transactional
// message straight into Redis, as the API would, so ops can test a route
// end to end; with --wait it follows the jobs to their outcome.
package send

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// ErrUsage is wrapped by errors about the command line (exit status 2 in
// campaignctl); Run returns flag.ErrHelp after printing --help.
var ErrUsage = errors.New("usage")

const about = `Queues one message on the transactional lane, one job per --to, and prints
the job IDs. The message is built from --subject and --text and/or --html
(proper MIME, with Date and Message-ID), or taken as is from --raw FILE (a
complete RFC 5322 message; a missing Date or Message-ID is added, Bcc is
removed). No sender-domain check is made: this is an operator's tool.

With --wait it polls until every job is final and prints each outcome; it
fails unless all were delivered.`

const example = `campaignctl send --from 'Ops <ops@example.com>' --to me@example.org \
      --subject 'route test' --text 'hello' --wait`

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ", ") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

type options struct {
	from, subject, text, html, raw string
	to, headers                    list
	wait                           bool
	timeout, poll                  time.Duration
}

// Run is `campaignctl send [flags]`: it queues through rdb under ks and
// writes job IDs and outcomes to stdout, flag help to stderr.
func Run(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	from, build, err := o.message()
	if err != nil {
		return err
	}
	to := make([]string, len(o.to))
	for i, s := range o.to {
		if to[i], err = address.Normalize(s); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	q := intake.NewQueue(streams.New(rdb, ks, "campaignctl"), ks)
	queued, err := q.Enqueue(ctx, from, to, build)
	for _, j := range queued {
		fmt.Fprintf(stdout, "queued %s for %s\n", j.ID, j.To)
	}
	if err != nil {
		return err
	}
	if !o.wait {
		return nil
	}
	return wait(ctx, rdb, ks, queued, o, stdout, stderr)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.from, "from", "", "From address, e.g. 'Ops <ops@example.com>' (with --raw: the envelope sender, default the message's From)")
	fs.Var(&o.to, "to", "recipient address (repeatable; one job each)")
	fs.StringVar(&o.subject, "subject", "", "subject")
	fs.StringVar(&o.text, "text", "", "plain-text body")
	fs.StringVar(&o.html, "html", "", "HTML body")
	fs.Var(&o.headers, "header", "extra header 'Name: value' (repeatable)")
	fs.StringVar(&o.raw, "raw", "", "send this RFC 5322 message FILE instead of building one")
	fs.BoolVar(&o.wait, "wait", false, "wait until every job is final and print the outcomes")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "with --wait: give up after this long")
	fs.DurationVar(&o.poll, "poll", 250*time.Millisecond, "with --wait: how often to look")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: campaignctl send [flags]\n\n%s\n\nflags:\n", about)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nexample:\n  %s\n", example)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", err, ErrUsage)
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), ErrUsage)
	case len(o.to) == 0:
		return nil, fmt.Errorf("--to is required: %w", ErrUsage)
	case o.raw != "" && (o.subject != "" || o.text != "" || o.html != "" || len(o.headers) > 0):
		return nil, fmt.Errorf("--raw is a complete message: leave out --subject, --text, --html and --header: %w", ErrUsage)
	case o.raw == "" && (o.from == "" || o.subject == "" || o.text == "" && o.html == ""):
		return nil, fmt.Errorf("give --from, --subject and --text and/or --html (or --raw FILE): %w", ErrUsage)
	}
	return o, nil
}

// message returns the envelope sender and the per-recipient builder.
func (o *options) message() (string, func(string) ([]byte, error), error) {
	if o.raw != "" {
		b, err := os.ReadFile(o.raw)
		if err != nil {
			return "", nil, fmt.Errorf("--raw: %w", err)
		}
		raw, err := intake.PrepareRaw(b, time.Now())
		if err != nil {
			return "", nil, fmt.Errorf("--raw %s: %w", o.raw, err)
		}
		from := o.from
		if from == "" {
			from = raw.From[0].Address
		}
		if from, err = address.Normalize(from); err != nil {
			return "", nil, fmt.Errorf("envelope sender: %w", err)
		}
		return from, func(string) ([]byte, error) { return raw.Msg, nil }, nil
	}
	headers := make(map[string]string, len(o.headers))
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return "", nil, fmt.Errorf("--header %q: want 'Name: value': %w", h, ErrUsage)
		}
		headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	c, err := intake.Compose(intake.Parts{From: o.from, Subject: o.subject, Text: o.text, HTML: o.html, Headers: headers})
	if err != nil {
		return "", nil, err
	}
	return c.From(), c.Render, nil
}

// wait polls the jobs until all are final, printing each outcome as it
// arrives (and each new deferral to stderr), and fails unless all were
// delivered.
func wait(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, jobs []intake.Queued, o *options, stdout, stderr io.Writer) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	pending := append([]intake.Queued(nil), jobs...)
	seen := map[string]int{} // attempts already reported, by job
	failed := 0
	for len(pending) > 0 {
		var still []intake.Queued
		for _, j := range pending {
			st, err := intake.Lookup(ctx, rdb, ks, j.ID)
			if err != nil {
				if ctx.Err() != nil {
					return notFinal(len(pending), len(jobs), o.timeout, ctx.Err())
				}
				return err
			}
			switch {
			case st.Final:
				fmt.Fprintf(stdout, "%s %s: %s (%s)\n", j.ID, j.To, outcome(st), time.Since(start).Round(time.Millisecond))
				if st.State != "delivered" {
					failed++
				}
				continue
			case st.Last != nil && seen[j.ID] < st.Attempts:
				seen[j.ID] = st.Attempts
				fmt.Fprintf(stderr, "%s %s: %s; will retry\n", j.ID, j.To, outcome(st))
			}
			still = append(still, j)
		}
		if pending = still; len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return notFinal(len(pending), len(jobs), o.timeout, ctx.Err())
		case <-time.After(o.poll):
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d messages not delivered", failed, len(jobs))
	}
	return nil
}

func notFinal(n, of int, timeout time.Duration, err error) error {
	return fmt.Errorf("%d of %d messages not final (waited up to %s): %w", n, of, timeout, err)
}

// outcome is one line: state, reply and where it came from.
func outcome(st intake.Status) string {
	if st.Last == nil {
		return st.State
	}
	s := st.State
	for _, part := range []string{fmt.Sprint(st.Last.Code), st.Last.Enhanced, st.Last.Text} {
		if part != "" && part != "0" {
			s += " " + part
		}
	}
	if st.Last.Reason != "" {
		s += " [" + st.Last.Reason + "]"
	}
	if st.Last.Host != "" {
		s += " from " + st.Last.Host
	}
	return fmt.Sprintf("%s, attempt %d", s, st.Attempts)
}
