package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/pkg/dkim"
	"github.com/sluice-mta/sluice/pkg/lint"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
)

// engineYAML writes an engine config with a DKIM key for sluice.test
// (selector s1) and one-click unsubscribe; it returns the file and the
// key's DNS record.
func engineYAML(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	pemKey, txt, err := dkim.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	key := enginetest.Write(t, filepath.Join(dir, "s1.pem"), string(pemKey))
	return enginetest.Write(t, filepath.Join(dir, "engine.yaml"), fmt.Sprintf(`hostname: mta.sluice.test
dkim:
  - {domain: sluice.test, selector: s1, key_file: %s}
unsubscribe:
  base_url: https://mail.sluice.test
  secret: 0123456789abcdef0123456789abcdef
`, key)), txt
}

// goodCampaign is enginetest's campaign with an unsubscribe link.
func goodCampaign(t *testing.T, id string, n int) string {
	t.Helper()
	path := enginetest.Campaign(t, t.TempDir(), id, n, "example.test")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return enginetest.Write(t, path, strings.Replace(string(data), "This is the HTML part.", `<a href="{{.UnsubscribeURL}}">Unsubscribe</a>`, 1))
}

func TestLint(t *testing.T) {
	t.Parallel()
	cfg, txt := engineYAML(t)
	dns := dnstest.Start(t,
		dnstest.TXT("sluice.test", 300, "v=spf1 ip4:127.0.0.1 -all"),
		dnstest.TXT("s1._domainkey.sluice.test", 300, txt),
		dnstest.TXT("_dmarc.sluice.test", 300, "v=DMARC1; p=quarantine"))
	good := goodCampaign(t, "good", 5)

	// No Redis is needed: an unreachable one proves lint never asks.
	out, stderr, code := ctl(t, "x", "-redis", "redis://127.0.0.1:1", "-config", cfg, "lint", good, "--dns", dns.Addr)
	if code != 0 || !strings.Contains(out, "0 errors, 0 warnings") {
		t.Fatalf("good campaign: exit %d\n%s%s", code, out, stderr)
	}
	for _, ok := range []string{"ok       spf", "ok       dkim", "ok       dmarc", "ok       unsubscribe"} {
		if !strings.Contains(out, ok) {
			t.Errorf("lint output lacks %q:\n%s", ok, out)
		}
	}

	// Warnings alone still exit 0; --json carries them.
	out, _, code = ctl(t, "x", "lint", good, "--json", "--dns", dnstest.Start(t).Addr)
	var rep struct {
		lint.Report
		Errors, Warnings int
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("lint --json: exit %d %v\n%s", code, err, out)
	}
	if rep.Errors != 0 || rep.Warnings < 4 || rep.ID != "good" || rep.Valid != 5 { // unsubscribe, dkim, spf, dmarc
		t.Fatalf("lint --json without config or DNS: %+v", rep)
	}

	// A bad file: exit 1, every problem with its file and line.
	dir := t.TempDir()
	enginetest.Write(t, filepath.Join(dir, "bad.csv"), "email,first_name\nann@example.test,Ann\nbob@,Bob\n")
	bad := enginetest.Write(t, filepath.Join(dir, "bad.yaml"), "id: bad\nfrom: news@sluice.test\nsubject: 'Hi {{.first_name}}'\ntext: hi\nrecipients: bad.csv\nreply_to: nobody\n")
	out, _, code = ctl(t, "x", "lint", bad, "--offline")
	if code != 1 || !strings.Contains(out, bad+":6: reply_to") {
		t.Fatalf("bad campaign file: exit %d\n%s", code, out)
	}
	enginetest.Write(t, bad, "id: bad\nfrom: news@sluice.test\nsubject: 'Hi {{.first_name}}'\ntext: hi\nrecipients: bad.csv\n")
	out, _, code = ctl(t, "x", "lint", bad, "--offline")
	if code != 1 || !strings.Contains(out, filepath.Join(dir, "bad.csv")+":3: ") || !strings.Contains(out, "1 error") {
		t.Fatalf("bad recipient: exit %d\n%s", code, out)
	}
	if out, _, code = ctl(t, "x", "lint", bad, "--offline", "--skip-invalid"); code != 0 {
		t.Fatalf("--skip-invalid: exit %d\n%s", code, out)
	}
}

func TestPreviewRendersOneRecipient(t *testing.T) {
	t.Parallel()
	path := goodCampaign(t, "pv", 5)
	dec := new(mime.WordDecoder)
	for _, args := range [][]string{{"--recipient", "4"}, {"--email", "USER00003@example.test"}} {
		out, stderr, code := ctl(t, "x", append([]string{"preview", path}, args...)...)
		if code != 0 {
			t.Fatalf("preview %v: exit %d %s", args, code, stderr)
		}
		msg, err := mail.ReadMessage(strings.NewReader(out))
		if err != nil {
			t.Fatalf("preview %v is not a message: %v\n%s", args, err, out)
		}
		subj, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
		if subj != "Grüezi Name00003" || msg.Header.Get("To") != "user00003@example.test" ||
			!strings.Contains(msg.Header.Get("Content-Type"), "multipart/alternative") || !strings.Contains(out, "Hello Name00003") {
			t.Fatalf("preview %v:\n%s", args, out)
		}
		if !strings.Contains(stderr, "RCPT TO:<user00003@example.test>") || !strings.Contains(stderr, "line 5") {
			t.Errorf("preview %v envelope: %q", args, stderr)
		}
	}

	// With the engine config: the one-click headers and a DKIM signature
	// that verifies against the published key.
	cfg, txt := engineYAML(t)
	dns := dnstest.Start(t, dnstest.TXT("s1._domainkey.sluice.test", 300, txt))
	out := mustCtl(t, "x", "-config", cfg, "preview", path)
	if !strings.Contains(out, "List-Unsubscribe: <https://mail.sluice.test/u/") || !strings.Contains(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click") {
		t.Fatalf("preview with config lacks one-click unsubscribe:\n%s", out)
	}
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader([]byte(out)), &msgdkim.VerifyOptions{LookupTXT: dns.LookupTXT})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "sluice.test" {
		t.Fatalf("DKIM of the preview: %v %+v", err, vs)
	}

	if _, stderr, code := ctl(t, "x", "preview", path, "--email", "nobody@example.test"); code != 1 || !strings.Contains(stderr, "no recipient nobody@example.test") {
		t.Fatalf("unknown --email: exit %d %q", code, stderr)
	}
	if _, _, code := ctl(t, "x", "preview", path, "--recipient", "0"); code != 2 {
		t.Fatalf("--recipient 0: exit %d, want 2", code)
	}
}
