package lint

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
)

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fixture writes a campaign from news@<domain> with the given recipients
// rows (after the header email,first_name).
func fixture(t *testing.T, domain string, rows ...string) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "list.csv"), "email,first_name\n"+strings.Join(rows, "\n")+"\n")
	return write(t, filepath.Join(dir, "c.yaml"), `id: lint-test
from: '"News" <news@`+domain+`>'
subject: 'Hello {{slice .first_name 0 3}}'
text: |
  Hi {{.first_name}}. Unsubscribe: {{.UnsubscribeURL}}
recipients: list.csv
`)
}

// engineConfig has a fresh Ed25519 DKIM key for domain (selector s1) and
// one-click unsubscribe; it returns the key's DNS record.
func engineConfig(t *testing.T, domain string) (*config.Config, string) {
	t.Helper()
	pemKey, txt, err := dkim.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DKIM = []config.DKIM{{Domain: domain, Selector: "s1", KeyFile: write(t, filepath.Join(t.TempDir(), "k.pem"), string(pemKey))}}
	cfg.Unsubscribe.BaseURL, cfg.Unsubscribe.Secret = "https://mail.sluice.test", "0123456789abcdef0123456789abcdef"
	return cfg, txt
}

func find(rep *Report, sev, check string) []Finding {
	var out []Finding
	for _, f := range rep.Findings {
		if f.Severity == sev && f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func TestCleanCampaignHasNoWarnings(t *testing.T) {
	cfg, txt := engineConfig(t, "sluice.test")
	dns := dnstest.Start(t,
		dnstest.TXT("sluice.test", 300, "v=spf1 ip4:127.0.0.1 -all"),
		dnstest.TXT("sluice.test", 300, "google-site-verification=abc"),
		dnstest.TXT("s1._domainkey.sluice.test", 300, txt),
		dnstest.TXT("_dmarc.sluice.test", 300, "v=DMARC1; p=reject"))
	rep, err := Run(context.Background(), fixture(t, "sluice.test", "ann@example.test,Annabel", "bob@example.test,Bobby"),
		Options{Config: cfg, DNS: dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(Error)+rep.Count(Warning) != 0 {
		t.Fatalf("findings on a clean campaign: %+v", rep.Findings)
	}
	for _, check := range []string{"spf", "dkim", "dmarc", "unsubscribe"} {
		if len(find(rep, OK, check)) != 1 {
			t.Errorf("no ok finding for %s: %+v", check, rep.Findings)
		}
	}
	if rep.ID != "lint-test" || rep.Valid != 2 || rep.FromDomain != "sluice.test" {
		t.Errorf("report %+v", rep)
	}
}

func TestDNSProblemsAreWarnings(t *testing.T) {
	cfg, _ := engineConfig(t, "mail.sluice.test")
	_, otherKey, err := dkim.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t,
		dnstest.TXT("mail.sluice.test", 300, "v=spf1 a -all"),
		dnstest.TXT("mail.sluice.test", 300, "v=spf1 mx -all"),
		// Published, but not the configured key.
		dnstest.TXT("s1._domainkey.mail.sluice.test", 300, otherKey),
		// Only the organizational domain has DMARC.
		dnstest.TXT("_dmarc.sluice.test", 300, "v=DMARC1; p=none"))
	rep, err := Run(context.Background(), fixture(t, "mail.sluice.test", "ann@example.test,Annabel"), Options{Config: cfg, DNS: dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(Error) != 0 {
		t.Fatalf("errors: %+v", rep.Findings)
	}
	want := map[string]string{
		"spf":  "publishes 2 SPF records",
		"dkim": "does not hold the configured key",
	}
	for check, text := range want {
		w := find(rep, Warning, check)
		if len(w) != 1 || !strings.Contains(w[0].Message, text) {
			t.Errorf("%s warnings %+v, want one saying %q", check, w, text)
		}
	}
	if ok := find(rep, OK, "dmarc"); len(ok) != 1 || !strings.Contains(ok[0].Message, "organizational domain") {
		t.Errorf("dmarc: %+v", rep.Findings)
	}

	// Nothing published at all.
	empty := dnstest.Start(t)
	rep, err = Run(context.Background(), fixture(t, "mail.sluice.test", "ann@example.test,Annabel"), Options{Config: cfg, DNS: empty.Addr})
	if err != nil {
		t.Fatal(err)
	}
	for check, text := range map[string]string{"spf": "no SPF record", "dkim": "no DKIM key published at s1._domainkey.mail.sluice.test", "dmarc": "no DMARC record"} {
		if w := find(rep, Warning, check); len(w) != 1 || !strings.Contains(w[0].Message, text) {
			t.Errorf("%s warnings %+v, want one saying %q", check, w, text)
		}
	}
}

func TestWithoutConfigOrUnsubscribeWarns(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "l.csv"), "email\nann@example.test\n")
	path := write(t, filepath.Join(dir, "c.yaml"), "id: x\nfrom: news@sluice.test\nsubject: hi\ntext: hello\nrecipients: l.csv\nsend_at: 2001-01-01T00:00:00Z\n")
	rep, err := Run(context.Background(), path, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(find(rep, Warning, "unsubscribe")); n != 2 { // no unsubscribe at all, no link in the body
		t.Errorf("%d unsubscribe warnings: %+v", n, rep.Findings)
	}
	if len(find(rep, Warning, "dkim")) != 1 || len(find(rep, Warning, "send_at")) != 1 || rep.Count(Error) != 0 {
		t.Errorf("findings %+v", rep.Findings)
	}
}

func TestOfflineMakesNoQueries(t *testing.T) {
	cfg, _ := engineConfig(t, "sluice.test")
	dns := dnstest.Start(t)
	if _, err := Run(context.Background(), fixture(t, "sluice.test", "ann@example.test,Annabel"), Options{Config: cfg, DNS: dns.Addr, Offline: true}); err != nil {
		t.Fatal(err)
	}
	if n := dns.TotalQueries(); n != 0 {
		t.Fatalf("%d DNS queries with Offline", n)
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	// Row 3's name is too short for the subject's slice: Check renders
	// every row, so it is an invalid recipient (launch --skip-invalid
	// skips it), reported as a render error.
	path := fixture(t, "sluice.test", "ann@example.test,Annabel", "al@example.test,Al", "not-an-address,Carl")
	rep, err := Run(context.Background(), path, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(filepath.Dir(path), "list.csv")
	render, rcpt := find(rep, Error, "render"), find(rep, Error, "recipients")
	if len(render) != 1 || render[0].File != csv || render[0].Line != 3 {
		t.Errorf("render errors %+v", render)
	}
	if len(rcpt) != 1 || rcpt[0].File != csv || rcpt[0].Line != 4 || rep.Invalid != 2 {
		t.Errorf("recipient errors %+v", rcpt)
	}

	bad := write(t, filepath.Join(t.TempDir(), "bad.yaml"), "id: x\nfrom: news@sluice.test\nsubjet: hi\ntext: hello\nrecipients: none.csv\n")
	rep, err = Run(context.Background(), bad, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	errs := find(rep, Error, "campaign")
	if len(errs) == 0 || errs[0].File != bad || errs[0].Line != 3 || !strings.Contains(errs[0].Message, `unknown key "subjet"`) {
		t.Fatalf("errors %+v", rep.Findings)
	}
	if s := errs[0].String(); !strings.HasPrefix(s, bad+":3: ") {
		t.Errorf("String() = %q", s)
	}
}
