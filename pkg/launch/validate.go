package launch

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/message"
)

// validate reads the whole list once: counts valid recipients, collects
// invalid ones, and checks that every recipient's message can be rendered
// (renderCheck: for templates that only insert fields, a few map lookups
// a row; otherwise the message composed in full), so a row the template
// cannot be rendered for (a field it needs is missing or does not suit a
// function) or whose message exceeds campaign.MaxMessageBytes is found
// now, not mid-send, exactly as lint finds it. With skipInvalid such a
// row is reported and skipped like an invalid one; without, it stops the
// launch.
func validate(spec *campaign.Spec, tmpl *message.Template, skipInvalid bool, res *Result) error {
	r, err := campaign.OpenRecipients(spec.RecipientsPath())
	if err != nil {
		return err
	}
	defer r.Close()
	r.ReuseFields() // each row is checked and forgotten
	check := newRenderCheck(spec.Parts(), tmpl)
	invalid := func(re *campaign.RecipientError) {
		res.InvalidN++
		if len(res.Invalid) < MaxReported {
			res.Invalid = append(res.Invalid, re)
		}
	}
	for {
		rc, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var re *campaign.RecipientError
		if errors.As(err, &re) {
			invalid(re)
			continue
		}
		if err != nil {
			return err
		}
		if rerr := check.check(rc); rerr != nil {
			if !skipInvalid {
				return fmt.Errorf("%s:%d: cannot render the message for %s: %w", spec.RecipientsPath(), rc.Line, rc.Email, rerr)
			}
			if res.unrenderable == nil {
				res.unrenderable = map[int]bool{}
			}
			res.unrenderable[rc.Line] = true
			invalid(&campaign.RecipientError{Path: spec.RecipientsPath(), Line: rc.Line, Email: rc.Email,
				Reason: rc.Email + ": cannot render the message: " + rerr.Error()})
			continue
		}
		noteUTF8(spec, rc, res)
		res.Valid++
	}
}

// noteUTF8 lists rc when its local part is not ASCII.
func noteUTF8(spec *campaign.Spec, rc campaign.Recipient, res *Result) {
	if address.NeedsSMTPUTF8(rc.Email) {
		res.UTF8N++
		if len(res.UTF8) < MaxReported {
			res.UTF8 = append(res.UTF8, &campaign.RecipientError{Path: spec.RecipientsPath(), Line: rc.Line, Email: rc.Email,
				Reason: rc.Email + ": the local part is not ASCII: only a receiver offering SMTPUTF8 (RFC 6531) accepts it; others refuse it (5.6.7)"})
		}
	}
}
