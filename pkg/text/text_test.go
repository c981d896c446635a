package text

import "testing"

func TestCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\nb\r\n": "a\r\nb\r\n",
		"a\nb":       "a\r\nb\r\n",
		"a\rb\r\n":   "a\r\nb\r\n",
		"a\r\r\nb":   "a\r\n\r\nb\r\n",
		"":           "\r\n",
		"\n.":        "\r\n.\r\n",
	} {
		if got := CRLF([]byte(in)); string(got) != want {
			t.Errorf("CRLF(%q) = %q, want %q", in, got, want)
		}
	}
	clean := []byte("a\r\nb\r\n")
	if got := CRLF(clean); &got[0] != &clean[0] {
		t.Error("a CRLF message was copied")
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer line", 8, "a lon…"},
		{"ééééé", 7, "éé…"}, // é is two bytes: no half rune before the ellipsis
	} {
		if got := Clip(c.in, c.n); got != c.want || len(got) > max(c.n, len(c.in)) {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
