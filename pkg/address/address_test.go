package address

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"  Bob@Example.TEST ":                    "Bob@example.test",
		"o'brien+tag@sub.example.test":           "o'brien+tag@sub.example.test",
		`"john doe"@example.test`:                `"john doe"@example.test`,
		"jörg@bücher.example.test":               "jörg@bücher.example.test",
		"x@EXAMPLE-1.test":                       "x@example-1.test",
		"a@" + strings.Repeat("b", 63) + ".test": "a@" + strings.Repeat("b", 63) + ".test",
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, reason := range map[string]string{
		"":                                       "missing email address",
		"bob@":                                   `invalid address "bob@": no domain after @`,
		"bob":                                    "no @",
		"@example.test":                          "no local part",
		"Bob <bob@example.test>":                 "without display name or angle brackets",
		"<bob@example.test>":                     "without display name or angle brackets",
		"bob@example.test (Bob)":                 "contains whitespace",
		"bob@example.test(Bob)":                  "without display name",
		"bob @example.test":                      "contains whitespace",
		`"bob"@example.test`:                     `did you mean "bob@example.test"?`,
		"a@example.test, b@example.test":         "contains whitespace",
		"a@example.test,b@example.test":          "expected single address",
		"bob@example.test\r\nBcc: x@y.test":      "contains a line break",
		"bob@exam\x00ple.test":                   "contains a line break or NUL",
		"bob@gmail":                              "has no dot",
		"bob@[192.0.2.1]":                        "address literals are not supported",
		"bob@-x.test":                            "starting or ending with '-'",
		"bob@x..test":                            "", // net/mail or the label check; either is fine
		"bob@x_y.test":                           `contains '_'`,
		strings.Repeat("l", 65) + "@x.test":      "local part longer than 64",
		"a@" + strings.Repeat("b", 64) + ".test": "over-long label",
	} {
		got, err := Normalize(in)
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("Normalize(%q) = %q, %v; want error containing %q", in, got, err, reason)
		}
	}
}

func TestASCIIDomainAndSMTPUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"anna@bücher.example":   "anna@xn--bcher-kva.example",
		"müller@bücher.example": "müller@xn--bcher-kva.example",
		"ann@example.test":      "ann@example.test",
	} {
		if got := ASCIIDomain(in); got != want {
			t.Errorf("ASCIIDomain(%q) = %q, want %q", in, got, want)
		}
	}
	if NeedsSMTPUTF8("anna@bücher.example") || !NeedsSMTPUTF8("müller@example.test") {
		t.Error("NeedsSMTPUTF8: only a non-ASCII local part needs it")
	}
}
