package launch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// TestSkipInvalidSkipsUnrenderableRows: a row the template cannot be
// rendered for is reported with its line and not enqueued under
// --skip-invalid, and stops the launch without it.
func TestSkipInvalidSkipsUnrenderableRows(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	dir := t.TempDir()
	write(t, dir, "l.csv", "email,first_name\na@example.test,Alice\nb@example.test,Bo\nc@example.test,Carol\n")
	path := write(t, dir, "c.yaml", `id: render
from: news@sluice.test
subject: 'Hello {{slice .first_name 0 3}}'
text: hi
recipients: l.csv
`)
	if _, err := Launch(context.Background(), rdb, ks, path, Options{}); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(dir, "l.csv")+":3: cannot render the message for b@example.test") {
		t.Fatalf("without --skip-invalid: %v", err)
	}
	res, err := Launch(context.Background(), rdb, ks, path, Options{SkipInvalid: true})
	if err != nil || res.Enqueued != 2 || res.InvalidN != 1 || res.Invalid[0].Line != 3 ||
		!strings.Contains(res.Invalid[0].Reason, "cannot render the message") {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestSizeLimits: a merge field over 64 KiB, a message over 10 MiB and a
// template over 1 MiB are refused with the file and line.
func TestSizeLimits(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", campaign.MaxFieldBytes+1)
	write(t, dir, "l.csv", "email,first_name\na@example.test,Ann\nb@example.test,"+big+"\n")
	path := write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, "field", "l.csv"))
	_, res, err := Check(path, Options{SkipInvalid: true})
	if err != nil || res.InvalidN != 1 || res.Invalid[0].Line != 3 ||
		!strings.Contains(res.Invalid[0].Error(), `field "first_name" is 65537 bytes, larger than 64 KiB, the limit for a merge field`) {
		t.Fatalf("field: %+v %v", res, err)
	}

	// A field used many times: the message is over the limit.
	field := strings.Repeat("y", 60<<10)
	write(t, dir, "m.csv", "email,first_name\na@example.test,"+field+"\n")
	tmpl := strings.Repeat("{{.first_name}}", 200)
	path = write(t, dir, "m.yaml", "id: msg\nfrom: news@sluice.test\nsubject: s\ntext: '"+tmpl+"'\nrecipients: m.csv\n")
	if _, _, err := Check(path, Options{}); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(dir, "m.csv")+":2: cannot render the message for a@example.test: the message would be") ||
		!strings.Contains(err.Error(), "larger than 10 MiB, the limit for one message") {
		t.Fatalf("message: %v", err)
	}

	write(t, dir, "big.txt", strings.Repeat("z", campaign.MaxTemplateBytes+1))
	path = write(t, dir, "t.yaml", "id: tmpl\nfrom: news@sluice.test\nsubject: s\ntext_file: big.txt\nrecipients: l.csv\n")
	if _, _, err := Check(path, Options{}); err == nil || !strings.Contains(err.Error(), path+":4: text_file: ") ||
		!strings.Contains(err.Error(), "larger than 1 MiB, the limit for a template") {
		t.Fatalf("template: %v", err)
	}
}

// TestTemplatesStayInTheCampaignDirectory: text_file/html_file outside
// the campaign file's directory (absolute, ../, or a symbolic link out)
// are refused unless AllowOutside.
func TestTemplatesStayInTheCampaignDirectory(t *testing.T) {
	outside := t.TempDir()
	secret := write(t, outside, "secret.txt", "root:x:0:0\n")
	dir := t.TempDir()
	write(t, dir, "l.csv", "email,first_name\na@example.test,Ann\n")
	if err := os.Symlink(secret, filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(dir, secret)
	for _, file := range []string{secret, rel, "link.txt"} {
		path := write(t, dir, "c.yaml", "id: out\nfrom: news@sluice.test\nsubject: s\nhtml_file: '"+file+"'\nrecipients: l.csv\n")
		_, _, err := Check(path, Options{})
		if err == nil || !strings.Contains(err.Error(), path+":4: html_file: ") ||
			!strings.Contains(err.Error(), "is outside "+dir) {
			t.Errorf("%s: %v", file, err)
		}
		if _, _, err := Check(path, Options{AllowOutside: true}); err != nil {
			t.Errorf("%s with AllowOutside: %v", file, err)
		}
	}
	write(t, dir, "body.txt", "hello")
	path := write(t, dir, "c.yaml", "id: in\nfrom: news@sluice.test\nsubject: s\ntext_file: body.txt\nrecipients: l.csv\n")
	if _, _, err := Check(path, Options{}); err != nil {
		t.Errorf("a template beside the campaign: %v", err)
	}
}

// TestNonASCIILocalPartsAreListed: recipients needing SMTPUTF8 are
// reported with their line; an IDNA domain alone is not.
func TestNonASCIILocalPartsAreListed(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "l.csv", "email,first_name\nmueller@bücher.example,A\nmüller@bücher.example,B\n")
	path := write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, "utf8", "l.csv"))
	_, res, err := Check(path, Options{})
	if err != nil || res.Valid != 2 || res.UTF8N != 1 || res.UTF8[0].Line != 3 || !strings.Contains(res.UTF8[0].Reason, "SMTPUTF8") {
		t.Fatalf("%+v %v", res, err)
	}
}
