package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
	"github.com/sluice-mta/sluice/pkg/verp"
)

func cmdPreview(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "preview", "[flags] FILE [--recipient N | --email ADDR]",
		"Prints the exact message one recipient would get, headers and MIME parts as sent, and its envelope\n"+
			"on stderr. With the engine config (global -config) it includes what the engine adds: the one-click\n"+
			"List-Unsubscribe headers and the DKIM-Signature. Date and Message-ID are fresh each time (the\n"+
			"Message-ID encodes the job id, as the engine's does, with a new random part).",
		"campaignctl preview campaigns/welcome.yaml --email alice@example.com")
	nth := fs.Int("recipient", 1, "the Nth valid recipient of the list (from 1)")
	email := fs.String("email", "", "the recipient with this address")
	asJSON := fs.Bool("json", false, "print envelope and message as JSON")
	outside := fs.Bool("allow-outside", false, "let text_file and html_file name files outside the campaign file's directory (refused by default)")
	configFlag(e, fs)
	path, err := oneArg(fs, args, "campaign FILE")
	if err != nil {
		return err
	}
	if *nth < 1 {
		return fmt.Errorf("--recipient counts from 1: %w", errUsage)
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	spec, err := campaign.LoadWith(path, campaign.LoadOptions{AllowOutside: *outside})
	if err != nil {
		return err
	}
	rc, err := pickRecipient(spec.RecipientsPath(), *nth, *email)
	if err != nil {
		return err
	}
	msg, notes, err := renderAsEngine(spec, rc, cfg)
	if err != nil {
		return err
	}
	from := spec.ReturnPath
	if spec.VERP {
		if from, err = verp.Encode(from, spec.ID+"/"+strconv.Itoa(rc.Line)); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"mail_from": from, "rcpt_to": rc.Email, "line": rc.Line, "message": string(msg), "notes": notes})
	}
	fmt.Fprintf(e.stderr, "# envelope: MAIL FROM:<%s> RCPT TO:<%s> (%s line %d)\n", from, rc.Email, spec.RecipientsPath(), rc.Line)
	for _, n := range notes {
		fmt.Fprintln(e.stderr, "# note:", n)
	}
	_, err = e.stdout.Write(msg)
	return err
}

// pickRecipient finds the nth valid recipient, or the one with address
// email; an invalid row with that address says why it would not be sent.
func pickRecipient(path string, nth int, email string) (campaign.Recipient, error) {
	r, err := campaign.OpenRecipients(path)
	if err != nil {
		return campaign.Recipient{}, err
	}
	defer r.Close()
	want := ""
	if email != "" {
		if want, err = address.Normalize(email); err != nil {
			return campaign.Recipient{}, fmt.Errorf("--email: %w: %w", err, errUsage)
		}
	}
	for n := 0; ; {
		rc, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *campaign.RecipientError
		if errors.As(err, &re) {
			if want != "" && strings.EqualFold(strings.TrimSpace(re.Email), want) {
				return campaign.Recipient{}, fmt.Errorf("%w (this recipient would not be sent to)", re)
			}
			continue
		}
		if err != nil {
			return campaign.Recipient{}, err
		}
		n++
		if want != "" && strings.EqualFold(rc.Email, want) || want == "" && n == nth {
			return rc, nil
		}
		if want == "" && n > nth {
			break
		}
	}
	if want != "" {
		return campaign.Recipient{}, fmt.Errorf("%s: no recipient %s", path, want)
	}
	return campaign.Recipient{}, fmt.Errorf("%s: has fewer than %d valid recipients", path, nth)
}

// renderAsEngine builds the message as the engine's build step does
// (pkg/engine: unsubscribeFor, withMailto, then DKIM), from cfg when
// given. notes say what could not be reproduced.
func renderAsEngine(spec *campaign.Spec, rc campaign.Recipient, cfg *config.Config) ([]byte, []string, error) {
	var notes []string
	var x message.Extra
	var mailto []string
	if cfg == nil {
		notes = append(notes, "no -config given: what the engine adds from its config (one-click List-Unsubscribe, DKIM-Signature) is not shown")
	}
	if spec.Lane == campaign.Marketing {
		if cfg != nil && cfg.Unsubscribe.BaseURL != "" && cfg.Unsubscribe.Secret != "" {
			us, err := unsubscribe.NewSigner([]byte(cfg.Unsubscribe.Secret))
			if err != nil {
				return nil, nil, fmt.Errorf("unsubscribe.secret: %w", err)
			}
			url := unsubscribe.URL(cfg.Unsubscribe.BaseURL, us.Token(rc.Email, spec.ID, suppression.Marketing))
			x.UnsubscribeURL = url
			mailto = append(mailto, "<"+url+">")
			x.Headers = append(x.Headers, message.Header{Name: "List-Unsubscribe-Post", Value: "List-Unsubscribe=One-Click"})
		}
		if spec.Unsubscribe.Mailto != "" {
			mailto = append(mailto, "<mailto:"+spec.Unsubscribe.Mailto+"?subject=unsubscribe>")
		}
		if len(mailto) > 0 {
			// The engine writes List-Unsubscribe first, then -Post.
			x.Headers = append([]message.Header{{Name: "List-Unsubscribe", Value: strings.Join(mailto, ", ")}}, x.Headers...)
		}
	}
	// As the engine: the Message-ID names the job (verp.MessageID).
	x.MessageID = verp.MessageID(spec.ID+"/"+strconv.Itoa(rc.Line), spec.Template().FromDomain())
	msg, err := spec.Template().Render(rc.Email, rc.Fields, x)
	if err != nil {
		return nil, nil, fmt.Errorf("%s:%d: cannot render the message for %s: %w", spec.RecipientsPath(), rc.Line, rc.Email, err)
	}
	if cfg != nil && len(cfg.DKIM) > 0 {
		signer, err := dkim.NewSigner(cfg.DKIM)
		if err != nil {
			return nil, nil, err
		}
		if msg, err = signer.Sign(spec.Template().FromDomain(), msg); err != nil {
			return nil, nil, err
		}
	}
	return msg, notes, nil
}
