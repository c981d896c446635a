package suppress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/suppression/bulk"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func newList(t *testing.T) *suppression.List {
	return suppression.New(redistest.Client(t), keyspace.Space(redistest.Prefix(t)))
}

// run calls Run and returns stdout, stderr and the error.
func run(t *testing.T, l *suppression.List, args ...string) (string, string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	err := Run(context.Background(), l, args, &out, &errw)
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("%v: error is not one line: %q", args, err)
	}
	return out.String(), errw.String(), err
}

func TestAddCheckRemove(t *testing.T) {
	ctx := context.Background()
	l := newList(t)
	out, _, err := run(t, l, "add", "Bob@Example.test", "--reason", "hard_bounce", "--detail", "550 no such user")
	if err != nil || out != "suppressed bob@example.test (hard_bounce, global)\n" {
		t.Fatalf("add: %q %v", out, err)
	}
	e, _ := l.Get(ctx, "bob@example.test")
	if e == nil || e.Reason != suppression.HardBounce || e.Source != "campaignctl" || e.Detail != "550 no such user" {
		t.Fatalf("stored %+v", e)
	}

	out, _, err = run(t, l, "check", "BOB@example.test")
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, want := range []string{"bob@example.test is suppressed for all mail\n", "reason:     hard_bounce\n",
		"detail:     550 no such user\n", "source:     campaignctl\n", "audit trail:\n", "add     bob@example.test  hard_bounce/global  by campaignctl"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}

	out, _, err = run(t, l, "remove", "bob@example.test", "--why", "mailbox exists again")
	if err != nil || out != "removed bob@example.test\n" {
		t.Fatalf("remove: %q %v", out, err)
	}
	if e, _ := l.Get(ctx, "bob@example.test"); e != nil {
		t.Fatalf("still there: %+v", e)
	}
	out, _, err = run(t, l, "check", "bob@example.test")
	if !errors.Is(err, ErrNotSuppressed) || !strings.HasPrefix(out, "bob@example.test is not suppressed\n") {
		t.Fatalf("check after remove: %q %v", out, err)
	}
	// The audit trail outlives the entry: who removed it, and why.
	if !strings.Contains(out, "remove  bob@example.test  hard_bounce/global  by campaignctl") || !strings.Contains(out, `"mailbox exists again"`) {
		t.Fatalf("audit after remove:\n%s", out)
	}
	if _, _, err := run(t, l, "remove", "bob@example.test"); !errors.Is(err, ErrNotSuppressed) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestScopeAndDomain(t *testing.T) {
	l := newList(t)
	if _, _, err := run(t, l, "add", "@example.test", "--reason", "manual", "--scope", "marketing"); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, l, "check", "ann@example.test")
	if err != nil || !strings.Contains(out, "suppressed for marketing mail") || !strings.Contains(out, "domain entry @example.test") {
		t.Fatalf("check via domain: %q %v", out, err)
	}
	run(t, l, "add", "ann@x.test", "--reason", "hard_bounce")
	_, errOut, err := run(t, l, "add", "ann@x.test", "--reason", "unsubscribe", "--scope", "marketing")
	if err != nil || !strings.Contains(errOut, "scope stays global") {
		t.Fatalf("narrowing note: %q %v", errOut, err)
	}
	run(t, l, "add", "bo@example.test", "--reason", "manual")
	_, errOut, _ = run(t, l, "remove", "bo@example.test")
	if !strings.Contains(errOut, "still suppressed by the entry for @example.test") {
		t.Fatalf("remove under a domain entry: %q", errOut)
	}
}

func TestErrors(t *testing.T) {
	l := newList(t)
	cases := map[string][]string{
		"missing command":                        nil,
		`unknown command "ad"`:                   {"ad"},
		"--reason is required":                   {"add", "a@x.test"},
		`unknown reason "bad"`:                   {"add", "a@x.test", "--reason", "bad"},
		"invalid address":                        {"add", "not-an-address", "--reason", "manual"},
		"got 2 arguments":                        {"add", "a@x.test", "b@x.test", "--reason", "manual"},
		"missing FILE":                           {"import"},
		"flag provided but not defined: -colour": {"list", "--colour"},
		`--since "soon"`:                         {"list", "--since", "soon"},
		"no such file":                           {"import", "/nonexistent/x.csv"},
		`unknown format "xml"`:                   {"export", "--format", "xml"},
	}
	for want, args := range cases {
		_, _, err := run(t, l, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want %q", args, err, want)
		}
	}
}

func TestHelp(t *testing.T) {
	l := newList(t)
	for _, c := range commands {
		out, _, err := run(t, l, c.name, "--help")
		if err != nil || !strings.HasPrefix(out, "usage: campaignctl suppression "+c.name) ||
			!strings.Contains(out, "example:\n  campaignctl suppression "+c.name) {
			t.Errorf("%s --help: %v\n%s", c.name, err, out)
		}
	}
	if out, _, err := run(t, l, "help"); err != nil || !strings.Contains(out, "export") {
		t.Errorf("help: %v %q", err, out)
	}
}

func TestListExportImport(t *testing.T) {
	ctx := context.Background()
	l := newList(t)
	old := time.Now().Add(-30 * 24 * time.Hour)
	if err := l.AddMany(ctx, []suppression.Entry{
		{Address: "a@x.test", Reason: suppression.HardBounce, Code: 550, Detail: "gone", FirstSeen: old},
		{Address: "b@x.test", Reason: suppression.Unsubscribe},
		{Address: "c@x.test", Reason: suppression.HardBounce},
	}); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := run(t, l, "list", "--reason", "hard_bounce")
	if err != nil || strings.Count(out, "\n") != 2 || errOut != "2 entries\n" || !strings.Contains(out, "550 gone") {
		t.Fatalf("list: %q %q %v", out, errOut, err)
	}
	out, _, err = run(t, l, "list", "--since", "7d", "--json")
	if err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("list --since --json: %q %v", out, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["email"] == "a@x.test" {
			t.Fatalf("list --json line %q: %v", line, err)
		}
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "all.csv")
	_, errOut, err = run(t, l, "export", "-o", file)
	if err != nil || errOut != "exported 3 entries to "+file+"\n" {
		t.Fatalf("export: %q %v", errOut, err)
	}
	var direct bytes.Buffer
	if _, err := bulk.Export(ctx, l, &direct, bulk.FormatCSV, suppression.Filter{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, direct.Bytes()) {
		t.Fatalf("export file:\n%s\nwant:\n%s", got, direct.Bytes())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	out, _, _ = run(t, l, "export", "--format", "jsonl", "--reason", "unsubscribe")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"email":"b@x.test"`) {
		t.Fatalf("export jsonl: %q", out)
	}

	in := filepath.Join(dir, "new.csv")
	os.WriteFile(in, []byte("email,reason\nd@x.test,complaint\nnope,manual\ne@x.test,bogus\nf@x.test,\n"), 0o600)
	out, errOut, err = run(t, l, "import", in)
	if err == nil || !strings.Contains(err.Error(), "2 bad lines skipped") {
		t.Fatalf("import error: %v", err)
	}
	if out != in+": 2 added, 0 updated, 0 unchanged, 2 bad lines\n" ||
		!strings.Contains(errOut, in+":3: invalid address") || !strings.Contains(errOut, in+":4: ") {
		t.Fatalf("import output: %q %q", out, errOut)
	}
	if r, _ := l.Check(ctx, suppression.LaneMarketing, []string{"d@x.test", "f@x.test", "e@x.test"}); r[0] == nil || r[1] == nil || r[2] != nil {
		t.Fatalf("imported: %v", r)
	}
	jl := filepath.Join(dir, "more.jsonl")
	os.WriteFile(jl, []byte(`{"email":"g@x.test","reason":"manual"}`+"\n"), 0o600)
	if out, _, err := run(t, l, "import", jl); err != nil || !strings.Contains(out, "1 added") {
		t.Fatalf("jsonl by extension: %q %v", out, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-03-01":           time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		"2025-03-01T10:00:00Z": time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		"36h":                  now.Add(-36 * time.Hour),
		"7d":                   time.Date(2025, 3, 3, 12, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSince("-5h", now); err == nil {
		t.Error("negative duration accepted")
	}
}

func TestParseInterspersed(t *testing.T) {
	l := newList(t)
	// Flags before the address work as well as after it; "--" ends flags.
	if _, _, err := run(t, l, "add", "--reason", "manual", "a@x.test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, l, "add", "--reason", "manual", "--", "b@x.test"); err != nil {
		t.Fatal(err)
	}
	if r, _ := l.Check(context.Background(), suppression.LaneTransactional, []string{"a@x.test", "b@x.test"}); r[0] == nil || r[1] == nil {
		t.Fatal("not added")
	}
}
