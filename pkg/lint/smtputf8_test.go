package lint

import (
	"context"
	"strings"
	"testing"
)

// TestSMTPUTF8RecipientsAreNamed: lint says which recipients need a
// receiver offering SMTPUTF8 (a non-ASCII local part), with their line;
// an internationalised domain alone goes out as IDNA and is not named.
func TestSMTPUTF8RecipientsAreNamed(t *testing.T) {
	path := fixture(t, "sluice.test", "mueller@bücher.example,Anna", "müller@bücher.example,Bernd")
	rep, err := Run(context.Background(), path, Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	got := find(rep, Warning, "smtputf8")
	if len(got) != 1 || got[0].Line != 3 || !strings.Contains(got[0].Message, "müller@bücher.example") || !strings.Contains(got[0].Message, "SMTPUTF8") {
		t.Fatalf("%+v", rep.Findings)
	}
	if n := rep.Count(Error); n != 0 {
		t.Fatalf("errors: %+v", rep.Findings)
	}
}
