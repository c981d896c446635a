package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/mail"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/message"
)

// TestLoadSampleCampaign loads the shipped campaigns/welcome.yaml, reads
// all of its recipients and renders the first one.
func TestLoadSampleCampaign(t *testing.T) {
	path := filepath.Join("..", "..", "campaigns", "welcome.yaml")
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "welcome-2025" || s.Lane != Marketing || s.Path != path {
		t.Errorf("ID %q Lane %q Path %q", s.ID, s.Lane, s.Path)
	}
	if s.ReturnPath != "news@sluice.test" || s.Unsubscribe.Mailto != "unsubscribe@sluice.test" {
		t.Errorf("ReturnPath %q Mailto %q", s.ReturnPath, s.Unsubscribe.Mailto)
	}
	if !strings.HasPrefix(s.Text, "Hi {{.first_name}},") || !strings.Contains(s.HTML, `<a href="{{.UnsubscribeURL}}">`) {
		t.Errorf("bodies not loaded from files: %q / %q", s.Text[:20], s.HTML[:20])
	}
	if want := filepath.Join("..", "..", "campaigns", "welcome.csv"); s.RecipientsPath() != want {
		t.Errorf("RecipientsPath = %q, want %q", s.RecipientsPath(), want)
	}

	r, err := OpenRecipients(s.RecipientsPath())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var all []Recipient
	for {
		rc, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("sample recipient: %v", err)
		}
		all = append(all, rc)
	}
	if len(all) != 25 {
		t.Fatalf("read %d recipients, want 25", len(all))
	}
	for i, rc := range all {
		if rc.Line != i+2 || !strings.HasSuffix(rc.Email, ".example.test") || rc.Fields["first_name"] == "" || rc.Fields["city"] == "" {
			t.Errorf("recipient %d = %+v", i, rc)
		}
	}
	if last := all[24]; last.Email != "o'brien+news@corp.example.test" || last.Fields["city"] != "Cork, Munster" {
		t.Errorf("quoted CSV row = %+v", last)
	}

	raw, err := s.Template().Render(all[0].Email, all[0].Fields, message.Extra{UnsubscribeURL: "https://mail.sluice.test/u/x"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if subj != "Welcome to Sluice, Alice — here's what's next" {
		t.Errorf("Subject = %q", subj)
	}
	if got := m.Header.Get("X-Campaign-Tag"); got != "welcome-Berlin" {
		t.Errorf("X-Campaign-Tag = %q", got)
	}
	if got := m.Header.Get("From"); got != `"Sluice Demo" <news@sluice.test>` {
		t.Errorf("From = %q", got)
	}
	if got := m.Header.Get("Reply-To"); got != "<support@sluice.test>" {
		t.Errorf("Reply-To = %q", got)
	}
}

func TestLoadAllKeys(t *testing.T) {
	s, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		ID: "full.test_1", From: "Zoë at Sluice <news@Sluice.TEST>", ReplyTo: "Help <help@sluice.test>",
		Subject: "Hi {{.name}}", Text: "Hello {{.name}}, you are {{.age}}.\n", HTML: "<p>Hello {{.name}}</p>",
		Recipients: "people.jsonl", Lane: Transactional, ReturnPath: "Bounces@sluice.test",
		SendAt: time.Date(2025, 6, 1, 7, 0, 0, 0, time.UTC), Headers: map[string]string{"X-Tag": "{{.name}}"},
	}
	if s.ID != want.ID || s.From != want.From || s.ReplyTo != want.ReplyTo || s.Subject != want.Subject ||
		s.Text != want.Text || s.HTML != want.HTML || s.Recipients != want.Recipients || s.Lane != want.Lane ||
		s.ReturnPath != want.ReturnPath || !s.SendAt.Equal(want.SendAt) || len(s.Headers) != 1 || s.Headers["X-Tag"] != "{{.name}}" {
		t.Errorf("got  %+v\nwant %+v", *s, want)
	}
	if s.RecipientsPath() != filepath.Join("testdata", "people.jsonl") {
		t.Errorf("RecipientsPath = %q", s.RecipientsPath())
	}
	if p := s.Parts(); p.From != s.From || p.Subject != s.Subject || p.Text != s.Text || p.HTML != s.HTML || p.ReplyTo != s.ReplyTo {
		t.Errorf("Parts = %+v", p)
	}
	if s.Template() == nil || s.Template().FromAddress() != "news@Sluice.TEST" {
		t.Errorf("template not compiled")
	}

	// The engine stores a loaded Spec as JSON and rebuilds it elsewhere:
	// everything needed to send must survive the trip.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Parts(), s.Parts()) || back.ReturnPath != s.ReturnPath || back.Lane != s.Lane ||
		!back.SendAt.Equal(s.SendAt) || back.ID != s.ID || back.RecipientsPath() != s.RecipientsPath() || back.Pool != "warm-pool" {
		t.Errorf("JSON round trip:\n got %+v\nwant %+v", back, *s)
	}
}

// TestLoadErrors checks the exact message for each kind of bad file:
// file, line where there is one, and what is wrong.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"unknown_key.yaml", `testdata/unknown_key.yaml:6: unknown key "subjet" (did you mean "subject"?)`},
		{"missing_from.yaml", `testdata/missing_from.yaml: missing required key "from"`},
		{"bad_from.yaml", `testdata/bad_from.yaml:3: from: invalid address "News <news@>": `},
		{"bad_template.yaml", `testdata/bad_template.yaml:5: subject: template: subject:1: unclosed action`},
		{"bad_text_file.yaml", `testdata/bad_text_file.yaml:5: text_file: testdata/broken.txt: template: text:4: unexpected EOF`},
		{"missing_csv.yaml", `testdata/missing_csv.yaml:6: recipients: open testdata/nope.csv: no such file or directory`},
		{"no_email_column.yaml", `testdata/no_email_column.yaml:5: recipients: testdata/no_email.csv:1: no "email" column in header (columns: mail, first_name)`},
		{"unknown_field.yaml", `testdata/unknown_field.yaml:3: subject: template: subject:1:8: executing "subject" at <.frist_name>: map has no entry for key "frist_name" (testdata/list.csv has columns: first_name, city; the address is {{.email}})`},
		{"email_column.yaml", `testdata/email_column.yaml:4: text: template: text:1:5: executing "text" at <.Email>: map has no entry for key "Email" (testdata/bom_crlf.csv has columns: first_name, city; the address is {{.email}})`},
		{"bad_header.yaml", `testdata/bad_header.yaml:8: headers: Content-Type: Content-* headers are set by sluice itself and cannot be overridden`},
		{"bad_addresses.yaml", "testdata/bad_addresses.yaml:6: return_path: invalid address \"bounces@\": " +
			"no domain after @\ntestdata/bad_addresses.yaml:8: unsubscribe.mailto: invalid address \"mailto:unsub@sluice.test\": want the bare address, without mailto:"},
		{"bad_pool.yaml", `testdata/bad_pool.yaml:6: pool: "two words" must be 1-64 characters of A-Z a-z 0-9 . _ - (a pool name of the engine configuration)`},
		{"wrong_type.yaml", `testdata/wrong_type.yaml:3: subject: want a string, got a list`},
		{"not_mapping.yaml", `testdata/not_mapping.yaml:1: want a mapping of campaign keys, got a list`},
		{"syntax.yaml", `testdata/syntax.yaml:3: did not find expected key`},
		{"empty.yaml", `testdata/empty.yaml: empty file: want a mapping of campaign keys`},
		{"many_errors.yaml", strings.Join([]string{
			`testdata/many_errors.yaml:1: id: "has spaces" must be 1-64 characters of A-Z a-z 0-9 . _ -`,
			`testdata/many_errors.yaml:5: text and text_file are exclusive: use one`,
			`testdata/many_errors.yaml:7: lane: "bulk": want "marketing" or "transactional"`,
			`testdata/many_errors.yaml:8: send_at: invalid time "2025-06-01": want RFC 3339 with a zone, such as 2025-06-01T09:00:00Z`,
			`testdata/many_errors.yaml:9: duplicate key "subject" (first at line 3)`,
			`testdata/many_errors.yaml:12: unknown key "url" in unsubscribe`,
		}, "\n")},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatalf("loaded: %+v", s)
			}
			if got := err.Error(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
	if _, err := Load("testdata/absent.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}
