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

// TestLaunchNamesDuplicateLines: launch --skip-invalid names the lines
// of the duplicate rows it skipped.
func TestLaunchNamesDuplicateLines(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	dir := t.TempDir()
	enginetest.Write(t, filepath.Join(dir, "l.csv"), "email,first_name\n"+
		"ann@example.test,Ann\nbob@example.test,Bob\nnot-an-address,X\nann@example.test,Ann\n"+
		"cy@example.test,Cy\nBOB@example.test,Bob\n")
	path := enginetest.Write(t, filepath.Join(dir, "c.yaml"),
		"id: dups\nfrom: news@sluice.test\nsubject: s\ntext: hi\nrecipients: l.csv\n")
	out, stderr, code := ctl(t, prefix, "launch", "-q", "--skip-invalid", path)
	if code != 0 || !strings.Contains(out, "2 duplicates skipped: lines 5, 7\n") || !strings.Contains(out, "3 enqueued") ||
		!strings.Contains(stderr, "l.csv:4") {
		t.Errorf("launch: exit %d\n%s%s", code, out, stderr)
	}
	if got := lineList([]int{7}, 1); got != "line 7" {
		t.Errorf("lineList one = %q", got)
	}
	if got := lineList([]int{7, 12}, 5); got != "lines 7, 12 and 3 more" {
		t.Errorf("lineList capped = %q", got)
	}
}
