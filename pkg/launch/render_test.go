package launch

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// TestRenderCheckFastPath: templates that only insert fields are checked
// without rendering (simple), others are not; both agree with a render.
func TestRenderCheckFastPath(t *testing.T) {
	for _, tc := range []struct {
		subject, html string
		simple        bool
	}{
		{"Hi {{.first_name}}", "<p>{{.first_name}} {{/* c */}}{{.email}}</p>", true},
		{"Hi {{.first_name | printf \"%s\"}}", "", false},
		{"Hi {{if .first_name}}x{{end}}", "", false},
		{"Hi {{slice .first_name 0 3}}", "", false},
	} {
		parts := message.Parts{From: "news@sluice.test", Subject: tc.subject, Text: "t {{.first_name}}", HTML: tc.html}
		tmpl, err := message.Compile(parts)
		if err != nil {
			t.Fatal(err)
		}
		c := newRenderCheck(parts, tmpl)
		if c.simple != tc.simple {
			t.Errorf("%q: simple %v, want %v", tc.subject, c.simple, tc.simple)
		}
		for _, fields := range []map[string]string{{"first_name": "Zoë"}, {"other": "x"}, {"first_name": "Al"}} {
			rc := campaign.Recipient{Email: "a@example.test", Fields: fields}
			_, rerr := tmpl.Render(rc.Email, fields, message.Extra{UnsubscribeURL: unsubscribeCheck})
			if got := c.check(rc); (got == nil) != (rerr == nil) {
				t.Errorf("%q %v: check says %v, render %v", tc.subject, fields, got, rerr)
			}
		}
	}
}

// TestJSONLMissingFieldIsReported: a JSONL row lacking a field the
// templates insert is refused with its line, though the fast path reads
// no message.
func TestJSONLMissingFieldIsReported(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	dir := t.TempDir()
	write(t, dir, "l.jsonl", `{"email":"a@example.test","first_name":"Ann"}`+"\n"+`{"email":"b@example.test"}`+"\n")
	path := write(t, dir, "c.yaml", "id: jl\nfrom: news@sluice.test\nsubject: 'Hello {{.first_name}}'\ntext: hi\nrecipients: l.jsonl\n")
	if _, err := Launch(context.Background(), rdb, ks, path, Options{}); err == nil ||
		!strings.Contains(err.Error(), filepath.Join(dir, "l.jsonl")+":2: cannot render the message for b@example.test") {
		t.Fatalf("launch: %v", err)
	}
	if n := len(keys(t, rdb, ks)); n != 0 {
		t.Fatalf("a refused list wrote %d keys", n)
	}
}
