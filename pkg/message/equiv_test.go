package message

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// renderReference is Render as it was before messages were composed from
// pieces: the whole body executed, then encoded at once, into one slice.
// The multipart boundary is passed in (it was random per message; it is
// now one per Template). Compose must produce these bytes exactly.
func renderReference(t *Template, boundary, to string, fields map[string]string, x Extra) ([]byte, error) {
	data := map[string]string{"email": to, "UnsubscribeURL": x.UnsubscribeURL}
	for k, v := range fields {
		data[k] = v
	}
	m := &Message{} // only for its header scratch buffer
	out := []byte("Date: ")
	out = x.Date.AppendFormat(out, time.RFC1123Z)
	out = append(out, "\r\n"...)
	out = append(append(out, t.fromLine...), t.replyLine...)
	out, _ = appendHeader(out, "To", to, false)
	subject, err := m.execHeader(t.subject, nil, data)
	if err != nil {
		return nil, err
	}
	if out, err = appendHeader(out, "Subject", subject, true); err != nil {
		return nil, err
	}
	out = append(out, "Message-ID: "+x.MessageID+"\r\n"...)
	for _, h := range t.headers {
		v, err := m.execHeader(h.tmpl, nil, data)
		if err != nil {
			return nil, err
		}
		if v = strings.Trim(v, " \t"); v != "" {
			if out, err = appendHeader(out, h.name, v, true); err != nil {
				return nil, err
			}
		}
	}
	for _, h := range x.Headers {
		if out, err = appendHeader(out, h.Name, h.Value, false); err != nil {
			return nil, err
		}
	}
	var text, html []byte
	if t.text != nil {
		var b bytes.Buffer
		if err := t.text.Execute(&b, data); err != nil {
			return nil, err
		}
		text = append([]byte{}, b.Bytes()...) // never nil: the old code's nil for an empty text part sent it as text/html
	}
	if t.html != nil {
		var b bytes.Buffer
		if err := t.html.Execute(&b, data); err != nil {
			return nil, err
		}
		html = b.Bytes()
	}
	out = append(out, "MIME-Version: 1.0\r\n"...)
	if text == nil || html == nil {
		body, hdr := text, textPartHeader
		if text == nil {
			body, hdr = html, htmlPartHeader
		}
		out = appendQP(append(out, hdr+"\r\n"...), body)
		if !bytes.HasSuffix(out, []byte("\r\n")) {
			out = append(out, "\r\n"...)
		}
		return out, nil
	}
	out = append(out, "Content-Type: multipart/alternative; boundary=\""+boundary+"\"\r\n\r\n--"+boundary+"\r\n"+textPartHeader+"\r\n"...)
	out = appendQP(out, text)
	out = append(out, "\r\n--"+boundary+"\r\n"+htmlPartHeader+"\r\n"...)
	out = appendQP(out, html)
	return append(out, "\r\n--"+boundary+"--\r\n"...), nil
}

// boundaryOf is the multipart boundary t uses ("" for a single part).
func boundaryOf(t *Template) string {
	_, b, ok := bytes.Cut(t.bodyHead, []byte(`boundary="`))
	if !ok {
		return ""
	}
	b, _, _ = bytes.Cut(b, []byte(`"`))
	return string(b)
}

// equivTemplates are bodies that stress where static and merged text
// meet: merge fields mid-line and at line starts, lines longer than 76,
// trailing white space, CR and CRLF line ends, dots, UTF-8, control
// structures, nested templates, and bodies without any line break.
var equivTemplates = []Parts{
	{Subject: "Grüezi {{.first_name}} — {{.city}}", Headers: map[string]string{"X-City": "{{.city}}", "X-Tag": "static tag"},
		Text: "Hi {{.first_name}},\n" + strings.Repeat("A long line of static text, long enough that quoted-printable must break it softly past column 76 — with UTF-8: café.\n", 40) +
			"Trailing space here \n\tand a tab\t\n.dot line\nFrom {{.city}} with love \nBye {{.first_name}}",
		HTML: "<p>Hello <b>{{.first_name}}</b></p>\r\n" + strings.Repeat("<tr><td style=\"padding:8px\"><a href=\"https://shop.example.test/x?a=1&b=2\">naïve café crème</a></td></tr>\r\n", 30) +
			"<a href=\"https://example.test/u?c={{.city}}\">{{.first_name}}</a>\n"},
	{Subject: "{{.first_name}}", Text: "{{.first_name}}"},
	{Subject: "s", Text: "no merge at all\nsecond line   \n"},
	{Subject: "s", HTML: "<p>only html {{.first_name}}</p>\n<p>static</p>\n<p>static</p>\n{{if .city}}<i>{{.city}}</i>\n{{end}}tail without newline  "},
	{Subject: "s", Text: "{{define \"sig\"}}-- \nThe team\n{{end}}Lines\n{{range $i, $c := .first_name}}{{$i}}:{{$c}}\n{{end}}static\n{{template \"sig\"}}after\r\rbare CRs\r\n"},
	{Subject: "s", Text: "x\n\r", HTML: "\n\n\n{{.first_name}}\n\n\n"},
	{Subject: "{{.city}}", HTML: "<p>Hi {{.first_name}}</p>\n<p>static</p>\n{{.city}}</p>", Text: "{{.city}} and {{.first_name}}\n"}, // programs for all
	{Subject: "s", Text: strings.Repeat("=", 200) + "\n" + strings.Repeat("é", 100) + "{{.first_name}}" + strings.Repeat("x", 100) + "\n"},
}

var equivValues = []string{"<b>&amp;'\"+</b>", "a\x00b", "\xff\xfe", "", "Zoë", "A", " spaced ", strings.Repeat("long value ", 20), "日本語のテキスト", "tab\there", ".", "=?utf-8?q?x?=", "a=b", "trailing ", "x\ny", "x\r\ny", "\r"}

// TestComposeMatchesReference renders many recipients through the old
// path and the new one and compares the bytes: Render, and Compose's
// pieces written in turn.
func TestComposeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i, p := range equivTemplates {
		p.From = `"Sluice" <news@sluice.test>`
		tm := mustCompile(t, p)
		boundary := boundaryOf(tm)
		for r := 0; r < 300; r++ {
			to := fmt.Sprintf("user%d@example.test", r)
			fields := map[string]string{
				"first_name": equivValues[rng.IntN(len(equivValues))],
				"city":       equivValues[rng.IntN(len(equivValues))],
			}
			if strings.ContainsAny(fields["first_name"]+fields["city"], "\r\n") && i == 0 {
				fields["first_name"] = "Zoë" // header fields refuse line breaks; bodies take them (other templates)
			}
			x := Extra{MessageID: fmt.Sprintf("<m%d@sluice.test>", r), Date: fixedDate, UnsubscribeURL: "https://u.test/t",
				Headers: []Header{{"List-Unsubscribe", "<https://u.test/t>"}}}
			want, werr := renderReference(tm, boundary, to, fields, x)
			got, gerr := tm.Render(to, fields, x)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("template %d, %q: reference error %v, Render error %v", i, fields, werr, gerr)
			}
			if werr != nil {
				continue
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("template %d, fields %q: Render differs from the reference at byte %d:\n got %q\nwant %q",
					i, fields, firstDiff(got, want), got, want)
			}
			checkWire(t, got)
			m, err := tm.Compose(to, fields, x)
			if err != nil {
				t.Fatal(err)
			}
			var w bytes.Buffer
			if _, err := m.WriteTo(&w); err != nil || !bytes.Equal(w.Bytes(), want) || m.Len() != len(want) {
				t.Fatalf("template %d: WriteTo differs (err %v, Len %d of %d)", i, err, m.Len(), len(want))
			}
			if parts := m.Parts(); !bytes.Contains(parts[0], []byte("\r\n\r\n")) {
				t.Fatalf("template %d: header section does not end in the first piece", i)
			}
			m.Release()
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestStaticLinesShared checks the point of it all: a large static body
// is encoded once, and a message carries it as a shared piece rather than
// bytes of its own.
func TestStaticLinesShared(t *testing.T) {
	p := demoParts()
	p.Text = "Hi {{.first_name}},\n" + strings.Repeat("static line of text\n", 5000) + "bye {{.city}}\n"
	tm := mustCompile(t, p)
	m, err := tm.Compose("a@example.test", map[string]string{"first_name": "Zoë", "city": "Oslo"}, demoExtra())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if m.Len() < 100_000 || len(m.buf) > 4096 {
		t.Fatalf("message of %d bytes holds %d of its own; want the static lines shared", m.Len(), len(m.buf))
	}
}
