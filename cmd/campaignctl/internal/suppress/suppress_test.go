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
	dir := t.TempDir()
	badHeader := filepath.Join(dir, "bad.csv")
	os.WriteFile(badHeader, []byte("Emial,Name\na@x.test,Ann\n"), 0o600)
	for _, tc := range []struct {
		args  []string
		want  string
		usage bool // exit 2
	}{
		{nil, "missing command", true},
		{[]string{"ad"}, `unknown command "ad" (did you mean "add"?)`, true},
		{[]string{"add", "a@x.test"}, "add: --reason is required (hard_bounce, unsubscribe, complaint, manual, soft_bounce_limit)", true},
		{[]string{"add", "a@x.test", "--reason", "bad"}, `add: --reason: unknown reason "bad" (want hard_bounce, unsubscribe, complaint, manual or soft_bounce_limit)`, true},
		{[]string{"add", "a@x.test", "--reason", "manual", "--scope", "all"}, `add: --scope: unknown scope "all" (want global or marketing)`, true},
		{[]string{"add", "a@x.test", "b@x.test", "--reason", "manual"}, "add: one ADDRESS or @DOMAIN expected, got 2 arguments (a@x.test b@x.test)", true},
		{[]string{"import"}, "import: missing FILE", true},
		{[]string{"import", "x.csv", "--reason", "gone"}, `import: --reason: unknown reason "gone" (want hard_bounce, unsubscribe, complaint, manual or soft_bounce_limit)`, true},
		{[]string{"list", "--colour"}, "list: flag provided but not defined: -colour (see list --help)", true},
		{[]string{"list", "--since", "soon"}, `list: --since "soon": want a time (2025-03-01, 2025-03-01T12:00:00Z) or a duration (36h, 7d)`, true},
		{[]string{"export", "--format", "xml"}, `export: --format "xml": want csv or jsonl`, true},
		{[]string{"check"}, "check: missing ADDRESS or @DOMAIN", true},
		{[]string{"add", "not-an-address", "--reason", "manual"}, `add: invalid address "not-an-address": no @ (write @not-an-address to suppress a whole domain)`, false},
		{[]string{"check", "x@"}, `check: invalid address "x@": empty domain`, false},
		{[]string{"import", "/nonexistent/x.csv"}, "import: open /nonexistent/x.csv: no such file or directory", false},
		{[]string{"import", badHeader}, "import: " + badHeader + `:1: unknown column "Emial" (did you mean "email"?) (known: email,reason,scope,code,enhanced_code,detail,campaign,first_seen,last_seen,source,lane; the address column may also be named Email Address, E-mail, mail)`, false},
	} {
		_, _, err := run(t, l, tc.args...)
		if err == nil || err.Error() != tc.want || errors.Is(err, ErrUsage) != tc.usage {
			t.Errorf("%q: error %v (usage %v)\nwant %s (usage %v)", tc.args, err, errors.Is(err, ErrUsage), tc.want, tc.usage)
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
	lines := strings.Split(out, "\n")
	if len(lines) == 4 && strings.HasPrefix(lines[2], "a@x.test") {
		lines[1], lines[2] = lines[2], lines[1] // the list's order is its shards'
	}
	if err != nil || len(lines) != 4 || errOut != "2 entries\n" ||
		lines[0] != "ADDRESS                                  REASON            SCOPE     LAST SEEN             SOURCE      DETAIL" ||
		!strings.HasPrefix(lines[1], "a@x.test                                 hard_bounce       global    20") ||
		!strings.HasSuffix(lines[1], "Z  -           550 gone") || !strings.HasPrefix(lines[2], "c@x.test ") || !strings.HasSuffix(lines[2], "Z  -") {
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
	if err == nil || err.Error() != "import: "+in+": 2 bad lines skipped (listed above); the rest was imported" {
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

// A plain list of addresses (no header) takes --reason, else manual.
func TestImportPlainList(t *testing.T) {
	ctx := context.Background()
	l := newList(t)
	in := filepath.Join(t.TempDir(), "list.txt")
	os.WriteFile(in, []byte("imp5@example.org\nimp6@example.org\n"), 0o600)
	out, errOut, err := run(t, l, "import", in, "--reason", "hard_bounce")
	if err != nil || out != in+": 2 added, 0 updated, 0 unchanged, 0 bad lines\n" || errOut != "" {
		t.Fatalf("import: %q %q %v", out, errOut, err)
	}
	if e, _ := l.Get(ctx, "imp5@example.org"); e == nil || e.Reason != suppression.HardBounce || e.Source != "import" {
		t.Fatalf("imp5: %+v", e)
	}
	os.WriteFile(in, []byte("imp7@example.org\n"), 0o600)
	if _, _, err := run(t, l, "import", in); err != nil {
		t.Fatal(err)
	}
	if e, _ := l.Get(ctx, "imp7@example.org"); e == nil || e.Reason != suppression.Manual {
		t.Fatalf("imp7: %+v", e)
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
