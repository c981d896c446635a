package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// TestAllowOutside: lint, preview and launch refuse a template outside
// the campaign file's directory, and take it with --allow-outside.
func TestAllowOutside(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	shared := t.TempDir()
	body := enginetest.Write(t, filepath.Join(shared, "body.txt"), "Hello {{.first_name}}, shared body.\n")
	dir := t.TempDir()
	enginetest.Write(t, filepath.Join(dir, "l.csv"), "email,first_name\nann@example.test,Ann\n")
	path := enginetest.Write(t, filepath.Join(dir, "c.yaml"),
		"id: outside\nfrom: news@sluice.test\nsubject: s\ntext_file: '"+body+"'\nrecipients: l.csv\n")

	for _, args := range [][]string{
		{"lint", "--offline", path},
		{"preview", path},
		{"launch", "-q", path},
	} {
		out, stderr, code := ctl(t, prefix, args...)
		if code != 1 || !strings.Contains(out+stderr, "is outside "+dir) || !strings.Contains(out+stderr, "text_file") {
			t.Errorf("%v: exit %d, want 1 naming text_file outside %s\n%s%s", args, code, dir, out, stderr)
		}
	}
	if out := mustCtl(t, prefix, "lint", "--offline", "--allow-outside", path); !strings.Contains(out, "launch would accept it") {
		t.Errorf("lint --allow-outside: %s", out)
	}
	if out := mustCtl(t, prefix, "preview", "--allow-outside", path); !strings.Contains(out, "Hello Ann, shared body.") {
		t.Errorf("preview --allow-outside: %s", out)
	}
	if out := mustCtl(t, prefix, "launch", "-q", "--allow-outside", path); !strings.Contains(out, "campaign outside launched") || !strings.Contains(out, "1 enqueued") {
		t.Errorf("launch --allow-outside: %s", out)
	}
}
