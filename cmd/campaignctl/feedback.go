package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/sluice-mta/sluice/pkg/feedback"
)

// cmdFeedback runs "campaignctl feedback classify": the classifier the
// inbound listener uses, on message files.
func cmdFeedback(_ context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(e.stderr, "usage: campaignctl feedback classify [--json] FILE...\n\n"+
			"Reads bounces, complaints and auto-replies saved as message files and prints, per recipient,\n"+
			"kind (hard, soft, complaint, auto-reply, unknown), reason, status and SMTP code.\n\n"+
			"example:\n  campaignctl feedback classify --json bounces/*.eml\n")
		if len(args) == 0 {
			return fmt.Errorf("want a subcommand (classify): %w", errUsage)
		}
		return nil
	}
	if args[0] != "classify" {
		return fmt.Errorf("unknown subcommand %q (want classify): %w", args[0], errUsage)
	}
	fs := newFlags(e, "feedback classify", "[--json] FILE...",
		"Reads each message file (a bounce, an ARF complaint, an auto-reply) and classifies every recipient it\n"+
			"names, with the classifier the inbound listener uses: kind hard (the address is bad: suppress),\n"+
			"soft, complaint, auto-reply or unknown; a reason from a stable list (user-unknown, mailbox-full,\n"+
			"host-unknown, expired, blocked, spam-related, policy...); the reported status and SMTP code.\n"+
			"With --json, one JSON object per recipient and line: file, recipient, kind, reason, status, code.\n"+
			"A file that names no recipient prints one line with kind unknown and an empty recipient.",
		"campaignctl feedback classify --json bounces/*.eml")
	asJSON := fs.Bool("json", false, "print one JSON object per recipient")
	files, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("want at least one FILE (see campaignctl feedback classify -h): %w", errUsage)
	}
	type line struct {
		File      string `json:"file"`
		Recipient string `json:"recipient"`
		Kind      string `json:"kind"`
		Reason    string `json:"reason"`
		Status    string `json:"status"`
		Code      int    `json:"code"`
	}
	var rows []line
	failed := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err == nil {
			var rep *feedback.Report
			if rep, err = feedback.Parse(raw, ""); err == nil {
				for _, r := range rep.Recipients {
					rows = append(rows, line{f, r.Address, string(r.Kind), string(r.Reason), r.Status, r.Code})
				}
				if len(rep.Recipients) == 0 {
					rows = append(rows, line{File: f, Kind: string(feedback.Unknown), Reason: string(feedback.Other)})
				}
			}
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "campaignctl feedback classify: %s: %v\n", f, err)
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tRECIPIENT\tKIND\tREASON\tSTATUS\tCODE")
		for _, r := range rows {
			code := ""
			if r.Code != 0 {
				code = fmt.Sprint(r.Code)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.File, dash(r.Recipient), r.Kind, r.Reason, dash(r.Status), dash(code))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be read", failed, len(files))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
