package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"consumer", "connect_timeout", "command_timeout", "port"}
	for word, want := range map[string]string{
		"consumr":         "consumer",
		"CONSUMER":        "consumer",
		"prot":            "port",
		"conect_timeout":  "connect_timeout",
		"workers":         "",
		"totally_unknown": "",
	} {
		if got := Closest(word, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", word, got, want)
		}
	}
	if h := Hint("consumr", known); h != ` (did you mean "consumer"?)` {
		t.Errorf("Hint = %q", h)
	}
	if h := Hint("xyz", known); h != "" {
		t.Errorf("Hint for a far word = %q, want empty", h)
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"port", "prot", 2}, {"same", "same", 0}} {
		if got := Distance(c.a, c.b); got != c.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
