package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/lint"
)

func cmdLint(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "lint", "[flags] FILE",
		"Checks everything launch would, without enqueuing anything and without Redis: the campaign file,\n"+
			"its templates rendered against the first recipients, headers, addresses, the whole recipient list.\n"+
			"Then warns about what would hurt delivery: marketing mail without an unsubscribe, a From domain\n"+
			"the engine has no DKIM key for (give the engine config with the global -config), and the From\n"+
			"domain's DNS: SPF record, DKIM selector publishing the configured key, DMARC record.\n\n"+
			"Exit status 0 when there are only warnings, 1 when there are errors (launch would refuse it).",
		"campaignctl -config /etc/sluice/engine.yaml lint campaigns/welcome.yaml")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	offline := fs.Bool("offline", false, "skip the DNS checks")
	server := fs.String("dns", "", "DNS resolver ip:port for the DNS checks (default: the first nameserver in /etc/resolv.conf)")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each DNS query")
	render := fs.Int("render", 10, "render the messages of this many first recipients with their own data")
	skip := fs.Bool("skip-invalid", false, "report invalid recipients as warnings, as launch --skip-invalid would skip them")
	outside := fs.Bool("allow-outside", false, "let text_file and html_file name files outside the campaign file's directory (refused by default)")
	configFlag(e, fs)
	path, err := oneArg(fs, args, "campaign FILE")
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	rep, err := lint.Run(ctx, path, lint.Options{Config: cfg, Offline: *offline, DNS: *server,
		Timeout: *timeout, Render: *render, SkipInvalid: *skip, AllowOutside: *outside})
	if err != nil {
		return err
	}
	errs, warns := rep.Count(lint.Error), rep.Count(lint.Warning)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			*lint.Report
			Errors   int `json:"errors"`
			Warnings int `json:"warnings"`
		}{rep, errs, warns}); err != nil {
			return err
		}
	} else {
		printLint(e, rep, errs, warns)
	}
	if errs > 0 {
		return errSilent
	}
	return nil
}

func printLint(e *env, rep *lint.Report, errs, warns int) {
	if rep.ID != "" {
		fmt.Fprintf(e.stdout, "%s: campaign %s, %s lane, from %s: %s, %d invalid\n",
			rep.File, rep.ID, rep.Lane, rep.FromDomain, count(rep.Valid, "valid recipient"), rep.Invalid)
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(e.stdout, "%-8s %-12s %s\n", f.Severity, f.Check, f)
	}
	verdict := "launch would accept it"
	if errs > 0 {
		verdict = "launch would refuse it"
	}
	fmt.Fprintf(e.stdout, "%s, %s: %s\n", plural(errs, "error"), plural(warns, "warning"), verdict)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
