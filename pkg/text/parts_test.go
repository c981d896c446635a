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

// TestIsCRLFPartsAgrees compares with IsCRLF on every split of many
// short strings of CR, LF and other bytes (word-sized runs included).
func TestIsCRLFPartsAgrees(t *testing.T) {
	alphabet := []string{"\r", "\n", "\r\n", "x", "xxxxxxx", "\x8d"}
	var gen func(prefix string, depth int)
	n := 0
	gen = func(s string, depth int) {
		if s != "" {
			want := IsCRLF([]byte(s))
			for cut := 0; cut <= len(s); cut++ {
				for cut2 := cut; cut2 <= len(s); cut2 += 3 {
					parts := [][]byte{[]byte(s[:cut]), []byte(s[cut:cut2]), []byte(s[cut2:])}
					if got := IsCRLFParts(parts); got != want {
						t.Fatalf("IsCRLFParts(%q) = %v, IsCRLF = %v", parts, got, want)
					}
					n++
				}
			}
		}
		if depth == 0 {
			return
		}
		for _, a := range alphabet {
			gen(s+a, depth-1)
		}
	}
	gen("", 5)
	if n < 10000 {
		t.Fatalf("only %d cases", n)
	}
}
