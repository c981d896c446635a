package verp

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, id := range []string{"spring-sale/12", "welcome-2025/100000", "tx-9f3a"} {
		addr, err := Encode("bounces@mail.sluice.test", id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(addr, "bounces+") || !strings.HasSuffix(addr, "@mail.sluice.test") || strings.ContainsAny(addr, "/=") {
			t.Fatalf("Encode(%q) = %q", id, addr)
		}
		// Receivers may change the case of the local part.
		got, err := Decode(strings.ToUpper(addr[:strings.Index(addr, "@")]) + "@mail.sluice.test")
		if err != nil || got != id {
			t.Fatalf("Decode(%q) = %q, %v; want %q", addr, got, err, id)
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := Encode("no-domain", "x"); err == nil {
		t.Error("Encode accepted a return path without @")
	}
	if _, err := Encode("b@sluice.test", strings.Repeat("x", 60)); err == nil {
		t.Error("Encode made a local part over 64 octets")
	}
	if _, err := Decode("plain@sluice.test"); err == nil {
		t.Error("Decode found an id in a plain address")
	}
	if a, _ := Encode("b+old@sluice.test", "x"); a != "b+pa@sluice.test" {
		t.Errorf("re-tagging gave %q", a)
	}
}

func TestMessageIDRoundTrip(t *testing.T) {
	for _, id := range []string{"spring-sale/12", "welcome-2025/100000", "20260601-XQ4MZ7KDLBT3NW5RYH2GJ6PVCA"} {
		mid := MessageID(id, "news.sluice.test")
		if !strings.HasPrefix(mid, "<") || !strings.HasSuffix(mid, "@news.sluice.test>") || strings.ContainsAny(mid, "/= ") {
			t.Fatalf("MessageID(%q) = %q", id, mid)
		}
		// The token is the id as VERP encodes it, the random part 26 characters.
		if tok := "<" + strings.ToLower(enc.EncodeToString([]byte(id))) + "."; !strings.HasPrefix(mid, tok) || len(mid) != len(tok)+26+len("@news.sluice.test>") {
			t.Fatalf("MessageID(%q) = %q, want %s<26 random>@news.sluice.test>", id, mid, tok)
		}
		if MessageID(id, "news.sluice.test") == mid {
			t.Fatalf("MessageID(%q) is not unique per call", id)
		}
		// Quoted with or without brackets, and in another case.
		for _, q := range []string{mid, strings.Trim(mid, "<>"), strings.ToUpper(mid), strings.ToLower(mid)} {
			if got, ok := FromMessageID(q); !ok || got != id {
				t.Errorf("FromMessageID(%q) = %q, %v; want %q", q, got, ok, id)
			}
		}
	}
	if got := MessageID("a/1", "bücher.test"); got != "" {
		t.Errorf("MessageID on a non-ASCII domain = %q, want \"\"", got)
	}
	for _, mid := range []string{"", "<abc@example.test>", "<CAHx=abc.def@mail.gmail.com>",
		"<" + "mfrgg." + "ABCDEFGHIJKLMNOPQRSTUVWXY@x.test>", "<0000000000.ABCDEFGHIJKLMNOPQRSTUVWXYZ@x.test>"} {
		if id, ok := FromMessageID(mid); ok {
			t.Errorf("FromMessageID(%q) = %q, want none", mid, id)
		}
	}
}
