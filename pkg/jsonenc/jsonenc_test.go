package jsonenc

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAppendStringMatchesEncodingJSON: strings are quoted byte for byte
// as encoding/json quotes them (HTML-safe escapes, U+2028/9, invalid
// UTF-8 as U+FFFD, controls).
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "Zürich 😀", "\"\\/", "<a href='x'>&amp;</a>", "\n\r\t\b\f\x00\x01\x1f\x7f",
		"\u2028\u2029", "\xff\xfe", "a\xe2\x82", "\xed\xa0\x80"} {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want x%s", s, got, want)
		}
	}
}

// TestAppendTimeMatchesMarshalJSON: times as time.Time's MarshalJSON
// writes them; a year it refuses is refused.
func TestAppendTimeMatchesMarshalJSON(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 12, 1, 0, 24, 33, 123000000, time.UTC),
		time.Date(2026, 12, 1, 0, 24, 33, 0, time.UTC),
		time.Date(2026, 12, 1, 0, 24, 33, 5, time.FixedZone("X", 5*3600+1800)),
		{},
	} {
		want, _ := tm.MarshalJSON()
		if got, ok := AppendTime(nil, tm); !ok || string(got) != string(want) {
			t.Errorf("AppendTime(%v) = %s, %v; want %s", tm, got, ok, want)
		}
	}
	if _, ok := AppendTime(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Error("AppendTime took the year 10000, which MarshalJSON refuses")
	}
}

// TestFields: separators, omitted empty values, integers.
func TestFields(t *testing.T) {
	b := AppendField([]byte("{"), "s", "ok", true)
	b = AppendNonEmpty(b, "a", "", "b", "x<y", "c", "")
	b = append(AppendInt(b, "n", -42, false), '}')
	if want := `{"s":"ok","b":"x\u003cy","n":-42}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"<\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}
