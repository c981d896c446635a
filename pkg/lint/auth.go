package lint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/dkim"
)

// checkDNS looks up what receivers will: SPF for the From and envelope
// domains, each configured DKIM selector, and DMARC. Everything here is a
// warning: DNS is often fixed after the campaign file is written.
func checkDNS(ctx context.Context, rep *Report, spec *campaign.Spec, opt Options) error {
	r, err := newResolver(opt.DNS, opt.Timeout)
	if err != nil {
		rep.add(Warning, "dns", "DNS checks skipped: "+err.Error())
		return nil
	}
	domain := rep.FromDomain
	checkSPF(ctx, rep, r, domain)
	// SPF is checked against the envelope sender's domain, which DMARC
	// then wants aligned with From: check it too when it differs.
	if _, rp, ok := strings.Cut(spec.ReturnPath, "@"); ok && !strings.EqualFold(rp, domain) {
		checkSPF(ctx, rep, r, rp)
	}
	if opt.Config != nil {
		for _, k := range keysFor(opt.Config.DKIM, domain) {
			checkDKIM(ctx, rep, r, domain, k)
		}
	}
	checkDMARC(ctx, rep, r, domain)
	return ctx.Err()
}

func keysFor(keys []config.DKIM, domain string) []config.DKIM {
	var out []config.DKIM
	for _, k := range keys {
		if strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(k.Domain), "."), domain) {
			out = append(out, k)
		}
	}
	return out
}

func checkSPF(ctx context.Context, rep *Report, r *resolver, domain string) {
	txts, err := r.lookupTXT(ctx, domain)
	if err != nil && !notFound(err) {
		rep.add(Warning, "spf", fmt.Sprintf("cannot look up SPF for %s: %v", domain, err))
		return
	}
	var spf []string
	for _, t := range txts {
		// RFC 7208 §4.5: the version tag, then a space or the end.
		if l := strings.ToLower(t); l == "v=spf1" || strings.HasPrefix(l, "v=spf1 ") {
			spf = append(spf, t)
		}
	}
	switch {
	case len(spf) == 0:
		rep.add(Warning, "spf", fmt.Sprintf("%s publishes no SPF record (TXT \"v=spf1 ...\"): receivers cannot tell the engine may send for it", domain))
	case len(spf) > 1:
		rep.add(Warning, "spf", fmt.Sprintf("%s publishes %d SPF records: SPF then fails with permerror (RFC 7208 §4.5); merge them into one", domain, len(spf)))
	case strings.HasSuffix(strings.ToLower(spf[0]), "+all"):
		rep.add(Warning, "spf", fmt.Sprintf("%s: %q lets anyone send as the domain (+all)", domain, spf[0]))
	default:
		rep.add(OK, "spf", fmt.Sprintf("%s: %s", domain, spf[0]))
	}
}

// checkDKIM confirms the selector is published and holds the configured
// key the only way that proves it: sign a probe message with the key and
// verify it against DNS with go-msgauth, as a receiver would.
func checkDKIM(ctx context.Context, rep *Report, r *resolver, domain string, k config.DKIM) {
	name := strings.ToLower(k.Selector) + "._domainkey." + domain
	key, err := dkim.LoadKey(k.KeyFile)
	if err != nil {
		rep.add(Warning, "dkim", fmt.Sprintf("selector %s: %v", k.Selector, err))
		return
	}
	_, err = r.lookupTXT(ctx, name)
	if notFound(err) {
		rec, _ := dkim.PublicRecord(key)
		rep.add(Warning, "dkim", fmt.Sprintf("no DKIM key published at %s: receivers cannot verify the signature; publish TXT %q", name, rec))
		return
	}
	if err != nil {
		rep.add(Warning, "dkim", fmt.Sprintf("cannot look up %s: %v", name, err))
		return
	}
	signer, err := dkim.NewSigner([]config.DKIM{k})
	if err != nil {
		rep.add(Warning, "dkim", fmt.Sprintf("selector %s: %v", k.Selector, err))
		return
	}
	probe := "From: <lint@" + domain + ">\r\nTo: <lint@example.invalid>\r\nSubject: lint\r\nDate: " +
		time.Now().Format(time.RFC1123Z) + "\r\n\r\ncampaignctl lint probe\r\n"
	signed, err := signer.Sign(domain, []byte(probe))
	if err != nil {
		rep.add(Warning, "dkim", fmt.Sprintf("selector %s: sign a probe: %v", k.Selector, err))
		return
	}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed), &msgdkim.VerifyOptions{
		LookupTXT: func(n string) ([]string, error) { return r.lookupTXT(ctx, n) },
	})
	switch {
	case err != nil:
		rep.add(Warning, "dkim", fmt.Sprintf("%s: verify a probe signature: %v", name, err))
	case len(vs) == 0:
		rep.add(Warning, "dkim", fmt.Sprintf("%s: the probe carried no signature", name))
	case vs[0].Err != nil:
		rep.add(Warning, "dkim", fmt.Sprintf("%s does not hold the configured key (%s): signatures will fail: %v", name, k.KeyFile, vs[0].Err))
	default:
		rep.add(OK, "dkim", fmt.Sprintf("%s publishes the configured key (a probe signature verified)", name))
	}
}

// checkDMARC looks for a DMARC record at the From domain, then at its
// parents: receivers use the organizational domain's record when the
// domain has none (RFC 7489 §6.6.3). Walking up to two labels stands in
// for a public-suffix lookup; it is wrong only for names under suffixes
// like co.uk, where it simply finds nothing more.
func checkDMARC(ctx context.Context, rep *Report, r *resolver, domain string) {
	opts := &dmarc.LookupOptions{LookupTXT: func(n string) ([]string, error) { return r.lookupTXT(ctx, n) }}
	for d := domain; strings.Count(d, ".") >= 1; d = d[strings.IndexByte(d, '.')+1:] {
		rec, err := dmarc.LookupWithOptions(d, opts)
		if errors.Is(err, dmarc.ErrNoPolicy) {
			continue
		}
		if err != nil {
			rep.add(Warning, "dmarc", fmt.Sprintf("cannot look up DMARC for %s: %v", d, err))
			return
		}
		where := "_dmarc." + d
		if d != domain {
			where += " (organizational domain of " + domain + ")"
		}
		msg := fmt.Sprintf("%s: p=%s", where, rec.Policy)
		if rec.Policy == dmarc.PolicyNone {
			msg += " (monitoring only)"
		}
		rep.add(OK, "dmarc", msg)
		return
	}
	rep.add(Warning, "dmarc", fmt.Sprintf("no DMARC record at _dmarc.%s: Gmail and Yahoo require one from bulk senders (\"v=DMARC1; p=none\" will do to start)", domain))
}
