package text

import (
	"strings"
	"testing"
)

func TestIsCRLFParts(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  bool
	}{
		{[]string{"a\r\n", "b\r\n"}, true},
		{[]string{"a\r", "\nb\r\n"}, true},
		{[]string{"a\r", "", "\n"}, true},
		{[]string{"a\r", "b\r\n"}, false},
		{[]string{"a\n", "b\r\n"}, false},
		{[]string{"a\r\n", "\n"}, false},
		{[]string{"a\r\n", "b"}, false},
		{[]string{"a\r\n", "\r"}, false},
		{[]string{"a\r\r\n"}, false},
		{[]string{""}, false},
		{nil, false},
	} {
		var parts [][]byte
		for _, p := range c.parts {
			parts = append(parts, []byte(p))
		}
		if got := IsCRLFParts(parts); got != c.want {
			t.Errorf("IsCRLFParts(%q) = %v, want %v", c.parts, got, c.want)
		}
		if joined := []byte(strings.Join(c.parts, "")); len(joined) > 0 && IsCRLF(joined) != c.want {
			t.Errorf("IsCRLF(%q) disagrees", joined)
		}
	}
}
