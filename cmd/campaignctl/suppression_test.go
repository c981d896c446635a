package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

// TestSuppressionOutputs runs `campaignctl suppression` as operators do and
// checks every byte it prints and its exit status: one prefix per error,
// usage errors exit 2, check answers once on stdout.
func TestSuppressionOutputs(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	list := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(list, []byte("imp5@example.org\nimp6@example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args           []string
		stdout, stderr string
		code           int
	}{
		{[]string{"add", "bob@example.test"}, "",
			"campaignctl suppression: add: --reason is required (hard_bounce, unsubscribe, complaint, manual, soft_bounce_limit)\n", 2},
		{[]string{"add", "bob", "--reason", "manual"}, "",
			`campaignctl suppression: add: invalid address "bob": no @ (write @bob to suppress a whole domain)` + "\n", 1},
		{[]string{"frob"}, "", "", 2}, // the usage, then the reason: checked below
		{[]string{"import", list}, list + ": 2 added, 0 updated, 0 unchanged, 0 bad lines\n", "", 0},
		{[]string{"check", "nobody@example.org"}, "nobody@example.org is not suppressed\n", "", 1},
		{[]string{"remove", "nobody@example.org"}, "nobody@example.org was not suppressed\n", "", 1},
		{[]string{"list", "--reason", "complaint"},
			"ADDRESS                                  REASON            SCOPE     LAST SEEN             SOURCE      DETAIL\n", "0 entries\n", 0},
	} {
		out, stderr, code := ctl(t, prefix, append([]string{"suppression"}, c.args...)...)
		if c.args[0] == "frob" {
			if code != 2 || !strings.HasSuffix(stderr, "campaignctl suppression: unknown command \"frob\"\n") || out != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", c.args, code, out, stderr)
			}
			continue
		}
		if code != c.code || out != c.stdout || stderr != c.stderr {
			t.Errorf("%q: exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q", c.args, code, out, stderr, c.code, c.stdout, c.stderr)
		}
	}
	// check of a suppressed address: exit 0, the answer on stdout only.
	out, stderr, code := ctl(t, prefix, "suppression", "check", "imp5@example.org")
	if code != 0 || stderr != "" || !strings.HasPrefix(out, "imp5@example.org is suppressed for all mail\n  address entry imp5@example.org\n    reason:     manual\n") {
		t.Errorf("check: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
