package message

import (
	"bytes"
	"io"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"strings"
	"testing"
)

func TestQPRules(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a=b", "a=3Db"},
		{"trailing space \nnext", "trailing space=20\r\nnext"},
		{"tab at end\t", "tab at end=09"},
		{".leading dot\n.again", ".leading dot\r\n.again"}, // SMTP dot-stuffing is the client's job
		{"é", "=C3=A9"},
		{strings.Repeat("x", 76), strings.Repeat("x", 75) + "=\r\nx"}, // a soft break one early is valid too
		{strings.Repeat("x", 77), strings.Repeat("x", 75) + "=\r\nxx"},
		{strings.Repeat("x", 74) + "é", strings.Repeat("x", 74) + "=\r\n=C3=A9"},
	} {
		if got := string(appendQP(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("appendQP(%q) =\n %q\nwant\n %q", tc.in, got, tc.want)
		}
	}
}

// TestQPRoundTrip feeds random text (spaces, line endings of every kind,
// multi-byte characters, "=") through the encoder and the standard
// decoder, checking the RFC 2045 line limit and that only line endings
// change.
func TestQPRoundTrip(t *testing.T) {
	alphabet := []string{"a", "Z", " ", "\t", "=", ".", "\n", "\r\n", "\r", "é", "🎉", "~", "_", "word", strings.Repeat("x", 80)}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		var b strings.Builder
		for n := r.IntN(400); n > 0; n-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		in := b.String()
		enc := appendQP(nil, []byte(in))
		for _, l := range strings.Split(string(enc), "\r\n") {
			if len(l) > 76 {
				t.Fatalf("encoded line of %d > 76: %q", len(l), l)
			}
			if strings.HasSuffix(l, " ") || strings.HasSuffix(l, "\t") {
				t.Fatalf("trailing whitespace in %q", l)
			}
		}
		if bytes.ContainsAny(bytes.ReplaceAll(enc, []byte("\r\n"), nil), "\r\n") {
			t.Fatalf("bare CR or LF in %q", enc)
		}
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
		if err != nil {
			t.Fatalf("decode %q: %v", enc, err)
		}
		want := strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(in)
		if string(dec) != want {
			t.Fatalf("round trip of %q:\n got %q\nwant %q", in, dec, want)
		}
	}
}

func TestEncodedWordsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", " ", "é", "日本", "🎉", "?", "=", "_", "\t", "Z"}
	dec := new(mime.WordDecoder)
	for i := 0; i < 300; i++ {
		var b strings.Builder
		b.WriteString("é")
		for n := r.IntN(200); n > 0; n-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		in := strings.Trim(b.String(), " \t")
		name := []string{"Subject", "X-A-Rather-Long-Custom-Header-Name-That-Takes-Room-Xxxxxxxxxxxxx"}[i%2]
		out, err := appendHeader(nil, name, in, true)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n")
		var words []string
		for j, l := range lines {
			if len(l) > 78 {
				t.Fatalf("line %d of %d chars: %q", j, len(l), l)
			}
			if j == 0 {
				l = strings.TrimPrefix(l, name+":")
			}
			if w := strings.TrimSpace(l); w != "" {
				if len(w) > 75 {
					t.Fatalf("encoded-word of %d > 75: %q", len(w), w)
				}
				words = append(words, w)
			}
		}
		got, err := dec.DecodeHeader(strings.Join(words, " "))
		if err != nil || got != in {
			t.Fatalf("round trip of %q:\n got %q (%v)\nfrom %q", in, got, err, out)
		}
	}
}
