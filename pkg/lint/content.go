package lint

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/message"
)

// clipSize is where Gmail cuts a message off behind "[Message clipped]",
// hiding whatever follows, typically the unsubscribe link.
const clipSize = 102 << 10

// checkContent renders the first recipients with their own data and
// checks what the campaign says about unsubscribing, signing and timing.
func checkContent(rep *Report, spec *campaign.Spec, opt Options) {
	if spec.Template() != nil {
		renderFirst(rep, spec, opt.Render)
	}
	if spec.Lane == campaign.Marketing {
		checkUnsubscribe(rep, spec, opt)
	}
	checkSigning(rep, opt)
	if !spec.SendAt.IsZero() && spec.SendAt.Before(time.Now()) {
		rep.add(Warning, "send_at", fmt.Sprintf("send_at %s is in the past: the campaign would start at once",
			spec.SendAt.Format(time.RFC3339)))
	}
}

// renderFirst renders the first n valid recipients exactly as the engine
// would (launch renders one per set of merge fields, with made-up data): a
// value that breaks a header or an HTML context shows up here.
func renderFirst(rep *Report, spec *campaign.Spec, n int) {
	r, err := campaign.OpenRecipients(spec.RecipientsPath())
	if err != nil {
		return // reported by Check
	}
	defer r.Close()
	x := message.Extra{UnsubscribeURL: "https://unsubscribe.invalid/u/lint"}
	largest := 0
	for done := 0; done < n; {
		rc, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *campaign.RecipientError
		if errors.As(err, &re) {
			continue // reported by Check
		}
		if err != nil {
			return
		}
		done++
		msg, err := spec.Template().Render(rc.Email, rc.Fields, x)
		if err != nil {
			continue // reported by Check, which renders every row
		}
		largest = max(largest, len(msg))
	}
	if largest > clipSize {
		rep.add(Warning, "size", fmt.Sprintf("a rendered message is %d KB: Gmail clips messages over 102 KB, hiding the rest (often the unsubscribe link)", largest>>10))
	}
}

// checkUnsubscribe: Gmail and Yahoo require one-click unsubscribe (RFC
// 8058) from bulk senders, and CAN-SPAM and the GDPR want a visible way
// out. The engine adds the one-click header only when its config has
// unsubscribe.base_url and secret.
func checkUnsubscribe(rep *Report, spec *campaign.Spec, opt Options) {
	mailto := spec.Unsubscribe.Mailto != ""
	switch {
	case opt.Config == nil && !mailto:
		rep.add(Warning, "unsubscribe", "marketing mail without an unsubscribe: no unsubscribe.mailto here, and without -config lint cannot tell whether the engine adds one-click List-Unsubscribe")
	case opt.Config == nil:
		rep.add(Warning, "unsubscribe", "no -config given: cannot tell whether the engine adds one-click List-Unsubscribe (RFC 8058), which Gmail and Yahoo require from bulk senders; only the mailto is certain")
	case opt.Config.Unsubscribe.BaseURL == "" || opt.Config.Unsubscribe.Secret == "":
		if mailto {
			rep.add(Warning, "unsubscribe", "only a mailto List-Unsubscribe: the engine config has no unsubscribe.base_url/secret, so no one-click link (RFC 8058), which Gmail and Yahoo require from bulk senders")
		} else {
			rep.add(Warning, "unsubscribe", "marketing mail without an unsubscribe: no unsubscribe.mailto and no unsubscribe.base_url/secret in the engine config")
		}
	default:
		rep.add(OK, "unsubscribe", "one-click List-Unsubscribe (RFC 8058) added by the engine")
	}
	if !strings.Contains(spec.Text+spec.HTML, "UnsubscribeURL") {
		rep.add(Warning, "unsubscribe", "the body has no {{.UnsubscribeURL}} link: not every mail client shows List-Unsubscribe, and the law wants a visible way out")
	}
}

// checkSigning warns when the engine has no DKIM key for the From domain:
// the mail would go out unsigned and could only pass DMARC through SPF.
func checkSigning(rep *Report, opt Options) {
	if rep.FromDomain == "" {
		return
	}
	if opt.Config == nil {
		rep.add(Warning, "dkim", "no -config given: cannot check that the engine has a DKIM key for "+rep.FromDomain)
		return
	}
	if len(keysFor(opt.Config.DKIM, rep.FromDomain)) == 0 {
		rep.add(Warning, "dkim", fmt.Sprintf("the engine config has no DKIM key for the From domain %s: mail goes out unsigned", rep.FromDomain))
	}
}
