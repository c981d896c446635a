package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestHelpOnEveryCommand(t *testing.T) {
	t.Parallel()
	for _, name := range order {
		// An unreachable Redis: help must not need one. Help is what was
		// asked for, so it goes to stdout (campaignctl status -h | less).
		out, stderr, code := ctl(t, "x", "-redis", "redis://127.0.0.1:1", name, "-h")
		if code != 0 || !strings.Contains(out, "usage: campaignctl "+name) || stderr != "" {
			t.Errorf("%s -h: exit %d\nstdout: %s\nstderr: %s", name, code, out, stderr)
		}
		if name != "suppression" && !strings.Contains(strings.ToLower(out), "example") {
			t.Errorf("%s -h has no example:\n%s", name, out)
		}
	}
	for _, args := range [][]string{{"-h"}, {"help"}, {"--help"}} {
		out, stderr, code := ctl(t, "x", args...)
		if code != 0 || !strings.Contains(out, "report") || !strings.Contains(out, "Exit status") || stderr != "" {
			t.Errorf("campaignctl %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, stderr)
		}
	}
	// Usage errors still go to stderr, exit 2.
	if out, stderr, code := ctl(t, "x", "-bogus"); code != 2 || out != "" || !strings.Contains(stderr, "flag provided but not defined: -bogus") || !strings.Contains(stderr, "usage: campaignctl") {
		t.Errorf("campaignctl -bogus: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
}

// TestGlobalFlagsAfterCommand: -redis, -config and -prefix are accepted
// after the command name too.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	t.Parallel()
	// ctl puts a good -redis first; the one after the command wins.
	_, stderr, code := ctl(t, "x", "status", "-redis", "redis://127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "redis 127.0.0.1:1") {
		t.Errorf("status -redis BAD: exit %d, stderr %q", code, stderr)
	}
	out, stderr, code := ctl(t, "x", "list", "--prefix=globalafter", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list --prefix=P --json: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if _, stderr, code := ctl(t, "x", "status", "-prefix"); code != 2 || !strings.Contains(stderr, "campaignctl status: flag needs an argument: -prefix") {
		t.Errorf("status -prefix: exit %d, stderr %q", code, stderr)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, stderr, code := ctl(t, "x", "completion", sh)
		if code != 0 || stderr != "" || !strings.Contains(out, "campaignctl") || !strings.Contains(out, "suppression") || !strings.Contains(out, "skip-invalid") {
			t.Errorf("completion %s: exit %d, stderr %q\n%s", sh, code, stderr, out)
		}
	}
	if _, stderr, code := ctl(t, "x", "completion", "tcsh"); code != 2 || !strings.Contains(stderr, `unknown shell "tcsh"`) {
		t.Errorf("completion tcsh: exit %d, stderr %q", code, stderr)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		out := mustCtl(t, "x", "completion", "bash")
		if b, err := exec.Command(bash, "-n", "-c", out).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v\n%s", err, b)
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	prefix := "exitcodes"
	for _, c := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"status", "a", "b"}, 2, "at most one campaign ID"},
		{[]string{"status", "--detail"}, 2, "--detail needs a campaign ID"},
		{[]string{"launch"}, 2, "want exactly one campaign FILE"},
		{[]string{"launch", "x.yaml", "--at", "yesterday"}, 2, "--at"},
		{[]string{"launch", "x.yaml", "--at", "2001-01-01T00:00:00Z"}, 2, "in the past"},
		{[]string{"pause", "--nope", "x"}, 2, "flag provided but not defined"},
		{[]string{"pause", "nosuch"}, 1, `no campaign "nosuch"`},
		{[]string{"status", "nosuch"}, 1, `no campaign "nosuch"`},
		{[]string{"report", "nosuch"}, 1, `no campaign "nosuch"`},
		{[]string{"delete", "nosuch"}, 1, `no campaign "nosuch"`},
		{[]string{"launch", "/nonexistent/c.yaml"}, 1, "no such file"},
		{[]string{"send", "--to", "a@example.test"}, 2, "give --from"},
		{[]string{"limits", "frobnicate"}, 2, "unknown command"},
		{[]string{"limits", "set", "gogle", "--rate", "5"}, 2, `limits set: unknown provider "gogle" (did you mean "google"?); give --new`},
		{[]string{"limits", "reset", "nosuch"}, 1, `campaignctl limits: reset "nosuch": nothing to reset: no engine has throttle state for it`},
		{[]string{"limits", "reset", "gogle"}, 1, `reset "gogle": nothing to reset`},
		{[]string{"report", "x", "-outcome", "bouncd"}, 2, `campaignctl report: -outcome "bouncd": not an outcome (did you mean "bounced"?)`},
	} {
		out, stderr, code := ctl(t, prefix, c.args...)
		if code != c.code || !strings.Contains(stderr, c.say) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.say)
		}
		if c.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && c.code == 1 {
			t.Errorf("%v: error is not one line: %q", c.args, stderr)
		}
		if out != "" {
			t.Errorf("%v: wrote %q to stdout", c.args, out)
		}
	}
}

func TestParseAt(t *testing.T) {
	now := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		rel  bool
		ok   bool
	}{
		{"+10m", now.Add(10 * time.Minute), true, true},
		{"90s", now.Add(90 * time.Second), true, true},
		{"2025-06-01T10:00:00+02:00", time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC), false, false}, // in the past
		{"2025-06-02T10:00:00Z", time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC), false, true},
		{"-5m", time.Time{}, false, false},
		{"tomorrow", time.Time{}, false, false},
	} {
		got, rel, err := parseAt(c.in, now)
		if (err == nil) != c.ok || c.ok && (!got.Equal(c.want) || rel != c.rel) {
			t.Errorf("parseAt(%q) = %v, %v, %v", c.in, got, rel, err)
		}
	}
}

func TestProgressRendering(t *testing.T) {
	if got := bar(0.5, 10); got != "[#####-----]" {
		t.Errorf("bar(0.5) = %q", got)
	}
	if got := bar(1.7, 4); got != "[####]" {
		t.Errorf("bar(1.7) = %q", got)
	}
	if got := eta(300, 100); got != "3s" {
		t.Errorf("eta = %q", got)
	}
	if got := eta(10, 0); got != "" {
		t.Errorf("eta without rate = %q", got)
	}
	var b strings.Builder
	m := newMeter(&b) // not a terminal: plain lines, at most every few seconds
	m.show("one")
	m.show("two")
	m.done("three")
	if b.String() != "one\nthree\n" {
		t.Errorf("plain meter wrote %q", b.String())
	}
}

// TestLimitsSetNames: set takes known providers, destination keys and,
// with --new, any name; a refused typo leaves no trace in show.
func TestLimitsSetNames(t *testing.T) {
	t.Parallel()
	prefix := "limitsnames"
	if _, _, code := ctl(t, prefix, "limits", "set", "gogle", "--rate", "5"); code != 2 {
		t.Fatalf("set gogle: exit %d", code)
	}
	for _, args := range [][]string{
		{"limits", "set", "google", "--rate", "5"},
		{"limits", "set", "mx:mx1.example.test,mx2.example.test", "--rate", "3"},
		{"limits", "set", "bigmail", "--new", "--rate", "4"},
	} {
		mustCtl(t, prefix, args...)
	}
	out := mustCtl(t, prefix, "limits", "show")
	if strings.Contains(out, "gogle") || !strings.Contains(out, "bigmail") || !strings.Contains(out, "mx:mx1.example.test") {
		t.Errorf("limits show:\n%s", out)
	}
	// Known now (it has state): no --new needed, and reset finds it.
	mustCtl(t, prefix, "limits", "set", "bigmail", "--rate", "6")
	if out := mustCtl(t, prefix, "limits", "reset", "bigmail"); out != "bigmail: reset to its start limits\n" {
		t.Errorf("reset: %q", out)
	}
	if _, stderr, code := ctl(t, prefix, "limits", "reset", "bigmail"); code != 1 || !strings.Contains(stderr, "nothing to reset") {
		t.Errorf("second reset: exit %d, %q", code, stderr)
	}
}
