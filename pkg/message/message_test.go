package message

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixedDate = time.Date(2025, 6, 1, 9, 30, 0, 0, time.FixedZone("", 2*3600))

func demoParts() Parts {
	return Parts{
		From:    `"Sluice Demo" <news@sluice.test>`,
		ReplyTo: "help@sluice.test",
		Subject: "Hello {{.first_name}}",
		Text:    "Hi {{.first_name}},\nsee you in {{.city}}.\nUnsubscribe: {{.UnsubscribeURL}}\n",
		HTML:    `<p>Hi {{.first_name}}</p><a href="{{.UnsubscribeURL}}">unsubscribe</a>`,
		Headers: map[string]string{"X-Campaign-Tag": "welcome-{{.city}}"},
	}
}

func demoExtra() Extra {
	return Extra{
		MessageID:      "<abc123@sluice.test>",
		Date:           fixedDate,
		UnsubscribeURL: "https://mail.sluice.test/u/tok",
		Headers: []Header{
			{"List-Unsubscribe", "<https://mail.sluice.test/u/tok>, <mailto:unsubscribe@sluice.test>"},
			{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
		},
	}
}

func mustCompile(t testing.TB, p Parts) *Template {
	t.Helper()
	tm, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tm
}

func mustRender(t testing.TB, tm *Template, to string, f map[string]string, x Extra) []byte {
	t.Helper()
	raw, err := tm.Render(to, f, x)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	checkWire(t, raw)
	return raw
}

// checkWire asserts what every message must satisfy on the wire: CRLF
// line endings only, no line over 998, header lines within 78.
func checkWire(t testing.TB, raw []byte) {
	t.Helper()
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			t.Fatalf("bare LF at offset %d: %q", i, context(raw, i))
		}
		if c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			t.Fatalf("bare CR at offset %d: %q", i, context(raw, i))
		}
		if c == 0 {
			t.Fatalf("NUL at offset %d", i)
		}
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("message does not end with CRLF")
	}
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no header/body separator")
	}
	for _, l := range strings.Split(string(head), "\r\n") {
		if len(l) > 78 {
			t.Errorf("header line longer than 78 (%d): %q", len(l), l)
		}
	}
	for _, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line longer than 998 (%d)", len(l))
		}
	}
}

func context(b []byte, i int) []byte { return b[max(0, i-20):min(len(b), i+20)] }

func headerNames(t *testing.T, raw []byte) []string {
	t.Helper()
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	var names []string
	for _, l := range strings.Split(string(head), "\r\n") {
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		name, _, _ := strings.Cut(l, ":")
		names = append(names, name)
	}
	return names
}

func TestRenderMultipartStructure(t *testing.T) {
	tm := mustCompile(t, demoParts())
	raw := mustRender(t, tm, "ann@example.test", map[string]string{"first_name": "Ann", "city": "Oslo"}, demoExtra())

	wantOrder := []string{"Date", "From", "Reply-To", "To", "Subject", "Message-ID", "X-Campaign-Tag",
		"List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type"}
	if got := headerNames(t, raw); strings.Join(got, ",") != strings.Join(wantOrder, ",") {
		t.Fatalf("headers = %v, want %v", got, wantOrder)
	}

	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Header
	for k, want := range map[string]string{
		"From":                  `"Sluice Demo" <news@sluice.test>`,
		"Reply-To":              "<help@sluice.test>",
		"To":                    "ann@example.test",
		"Subject":               "Hello Ann",
		"Message-ID":            "<abc123@sluice.test>",
		"MIME-Version":          "1.0",
		"X-Campaign-Tag":        "welcome-Oslo",
		"List-Unsubscribe":      "<https://mail.sluice.test/u/tok>, <mailto:unsubscribe@sluice.test>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"Date":                  "Sun, 01 Jun 2025 09:30:00 +0200",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if d, err := h.Date(); err != nil || !d.Equal(fixedDate) {
		t.Errorf("Date parses as %v, %v", d, err)
	}

	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v)", h.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	wantParts := []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", "Hi Ann,\r\nsee you in Oslo.\r\nUnsubscribe: https://mail.sluice.test/u/tok\r\n"},
		{"text/html; charset=utf-8", `<p>Hi Ann</p><a href="https://mail.sluice.test/u/tok">unsubscribe</a>`},
	}
	for i, w := range wantParts {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if got := p.Header.Get("Content-Type"); got != w.ctype {
			t.Errorf("part %d Content-Type = %q, want %q", i, got, w.ctype)
		}
		if got := p.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
			t.Errorf("part %d CTE = %q", i, got)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != w.body {
			t.Errorf("part %d body = %q, want %q", i, body, w.body)
		}
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Fatalf("want exactly two parts, got %v", err)
	}
}

func TestRenderSinglePart(t *testing.T) {
	for _, tc := range []struct {
		name, ctype string
		p           Parts
		body        string
	}{
		{"text", "text/plain; charset=utf-8", Parts{From: "a@sluice.test", Subject: "s", Text: "only {{.email}}"}, "only bob@example.test\r\n"},
		{"html", "text/html; charset=utf-8", Parts{From: "a@sluice.test", Subject: "s", HTML: "<b>{{.email}}</b>\n"}, "<b>bob@example.test</b>\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mustRender(t, mustCompile(t, tc.p), "bob@example.test", nil, Extra{})
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q", got)
			}
			if got := m.Header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
				t.Errorf("CTE = %q", got)
			}
			if m.Header.Get("Reply-To") != "" {
				t.Error("Reply-To written although not set")
			}
			body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
			if string(body) != tc.body {
				t.Errorf("body = %q, want %q", body, tc.body)
			}
		})
	}
}

func TestHTMLEscapesMergeData(t *testing.T) {
	evil := `<script>alert("x")</script>&`
	tm := mustCompile(t, demoParts())
	raw := mustRender(t, tm, "e@example.test", map[string]string{"first_name": evil, "city": "x"}, demoExtra())
	text, html := bodies(t, raw)
	if !strings.Contains(text, "Hi "+evil+",") {
		t.Errorf("text part should carry the value verbatim: %q", text)
	}
	if strings.Contains(html, "<script>") {
		t.Errorf("html part contains an unescaped script: %q", html)
	}
	if !strings.Contains(html, "<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;</p>") {
		t.Errorf("html part not escaped as expected: %q", html)
	}
	if h := subjectOf(t, raw); h != "Hello "+evil {
		t.Errorf("subject = %q", h)
	}
}

// bodies returns the decoded text and html parts of a multipart message.
func bodies(t *testing.T, raw []byte) (text, html string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	for i := 0; i < 2; i++ {
		p, err := mr.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if i == 0 {
			text = string(b)
		} else {
			html = string(b)
		}
	}
	return text, html
}

func subjectOf(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decode subject %q: %v", m.Header.Get("Subject"), err)
	}
	return s
}

func TestSubjectRFC2047RoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, subject, encoding string }{
		{"latin", "Grüße, {{.first_name}} – willkommen!", "?q?"},
		{"cjk", "ようこそ {{.first_name}} さん、ニュースレターへ", "?b?"},
		{"emoji-long", strings.Repeat("Offre spéciale 🎉 pour {{.first_name}} ", 6), "?q?"},
		{"looks-encoded", "Price =?utf-8?q?x?= for {{.first_name}}", "?q?"},
		{"ascii-long", strings.Repeat("A fairly long subject line for {{.first_name}} ", 5), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: tc.subject, Text: "x"})
			raw := mustRender(t, tm, "z@example.test", map[string]string{"first_name": "Zoë"}, Extra{})
			want := strings.TrimSpace(strings.ReplaceAll(tc.subject, "{{.first_name}}", "Zoë"))
			if tc.encoding == "" {
				want = strings.ReplaceAll(tc.subject, "{{.first_name}}", "Zoe")
				raw = mustRender(t, tm, "z@example.test", map[string]string{"first_name": "Zoe"}, Extra{})
				want = strings.TrimSpace(want)
			}
			if got := subjectOf(t, raw); got != want {
				t.Errorf("subject round trip:\n got %q\nwant %q", got, want)
			}
			head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
			if tc.encoding != "" && !bytes.Contains(head, []byte("=?utf-8"+tc.encoding)) {
				t.Errorf("subject not %s-encoded:\n%s", tc.encoding, head)
			}
			if tc.encoding == "" && bytes.Contains(head, []byte("=?")) {
				t.Errorf("ASCII subject encoded needlessly:\n%s", head)
			}
			for i := range head {
				if head[i] >= 0x80 {
					t.Fatalf("8-bit byte in header block:\n%s", head)
				}
			}
		})
	}
}

func TestNonASCIIDisplayName(t *testing.T) {
	tm := mustCompile(t, Parts{From: "Zoë Ærø <news@sluice.test>", Subject: "s", Text: "x"})
	raw := mustRender(t, tm, "z@example.test", nil, Extra{})
	m, _ := mail.ReadMessage(bytes.NewReader(raw))
	a, err := m.Header.AddressList("From")
	if err != nil || len(a) != 1 || a[0].Name != "Zoë Ærø" || a[0].Address != "news@sluice.test" {
		t.Fatalf("From = %q parses as %v, %v", m.Header.Get("From"), a, err)
	}
	if tm.FromAddress() != "news@sluice.test" || tm.FromDomain() != "sluice.test" {
		t.Errorf("FromAddress %q FromDomain %q", tm.FromAddress(), tm.FromDomain())
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	tm := mustCompile(t, demoParts())
	for _, tc := range []struct {
		name, part, to string
		fields         map[string]string
		extra          []Header
	}{
		{"subject CRLF", "subject", "a@example.test", map[string]string{"first_name": "x\r\nBcc: victim@example.test", "city": "c"}, nil},
		{"subject LF", "subject", "a@example.test", map[string]string{"first_name": "x\nBcc: v@example.test", "city": "c"}, nil},
		{"subject CR", "subject", "a@example.test", map[string]string{"first_name": "x\rBcc: v@example.test", "city": "c"}, nil},
		{"subject NUL", "subject", "a@example.test", map[string]string{"first_name": "x\x00", "city": "c"}, nil},
		{"custom header", "headers", "a@example.test", map[string]string{"first_name": "x", "city": "c\r\nBcc: v@example.test"}, nil},
		{"to", "to", "a@example.test\r\nBcc: v@example.test", map[string]string{"first_name": "x", "city": "c"}, nil},
		{"extra header", "extra_headers", "a@example.test", map[string]string{"first_name": "x", "city": "c"},
			[]Header{{"X-Sluice-Job", "1\r\nBcc: v@example.test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tm.Render(tc.to, tc.fields, Extra{Headers: tc.extra})
			if !errors.Is(err, ErrHeaderInjection) {
				t.Fatalf("err = %v, want ErrHeaderInjection", err)
			}
			var pe *PartError
			if !errors.As(err, &pe) || pe.Part != tc.part {
				t.Fatalf("err = %#v, want part %q", err, tc.part)
			}
			if tc.part == "headers" && pe.Header != "X-Campaign-Tag" || tc.part == "extra_headers" && pe.Header != "X-Sluice-Job" {
				t.Errorf("error does not name the header: %v", err)
			}
			if raw != nil {
				t.Errorf("got a message despite the error")
			}
		})
	}
}

func TestLineBreaksInBodyFieldsAreFine(t *testing.T) {
	tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: "s", Text: "Address:\n{{.addr}}\n"})
	raw := mustRender(t, tm, "a@example.test", map[string]string{"addr": "1 Main St\r\nBcc: x@example.test\nOslo"}, Extra{})
	m, _ := mail.ReadMessage(bytes.NewReader(raw))
	if m.Header.Get("Bcc") != "" {
		t.Fatal("body data created a header")
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	if want := "Address:\r\n1 Main St\r\nBcc: x@example.test\r\nOslo\r\n"; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
}

func TestMissingFieldIsAnError(t *testing.T) {
	for _, tc := range []struct {
		part string
		p    Parts
	}{
		{"subject", Parts{From: "n@sluice.test", Subject: "Hi {{.nope}}", Text: "x"}},
		{"text", Parts{From: "n@sluice.test", Subject: "s", Text: "Hi {{.nope}}"}},
		{"html", Parts{From: "n@sluice.test", Subject: "s", HTML: "<p>{{.nope}}</p>"}},
		{"headers", Parts{From: "n@sluice.test", Subject: "s", Text: "x", Headers: map[string]string{"X-A": "{{.nope}}"}}},
	} {
		_, err := mustCompile(t, tc.p).Render("a@example.test", map[string]string{"first_name": "A"}, Extra{})
		var pe *PartError
		if !errors.As(err, &pe) || pe.Part != tc.part || !strings.Contains(err.Error(), `map has no entry for key "nope"`) {
			t.Errorf("%s: err = %v", tc.part, err)
		}
		if !strings.HasPrefix(err.Error(), tc.part+": ") {
			t.Errorf("error does not start with the part: %v", err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	base := func(mod func(*Parts)) Parts {
		p := Parts{From: "n@sluice.test", Subject: "s", Text: "x"}
		mod(&p)
		return p
	}
	for _, tc := range []struct {
		name, prefix string
		p            Parts
	}{
		{"bad from", "from: invalid address", base(func(p *Parts) { p.From = "not an address" })},
		{"from without domain", "from: invalid address", base(func(p *Parts) { p.From = "news@" })},
		{"bad reply-to", "reply_to: invalid address list", base(func(p *Parts) { p.ReplyTo = "x@" })},
		{"subject syntax", "subject: template: subject:1:", base(func(p *Parts) { p.Subject = "Hi {{.name" })},
		{"subject empty", "subject: is empty", base(func(p *Parts) { p.Subject = "  " })},
		{"subject newline", "subject: template contains a line break", base(func(p *Parts) { p.Subject = "a\nb" })},
		{"text syntax", "text: template: text:2:", base(func(p *Parts) { p.Text = "ok\n{{if}}" })},
		{"html syntax", "html: template: html:1:", base(func(p *Parts) { p.HTML = "{{end}}" })},
		{"no body", "text: a message needs", base(func(p *Parts) { p.Text = "" })},
		{"structural", "headers: Content-Type: Content-* headers are set by sluice", base(func(p *Parts) { p.Headers = map[string]string{"Content-Type": "x"} })},
		{"structural from", "headers: from: is set by sluice", base(func(p *Parts) { p.Headers = map[string]string{"from": "x"} })},
		{"dkim", "headers: DKIM-Signature: is set by sluice", base(func(p *Parts) { p.Headers = map[string]string{"DKIM-Signature": "x"} })},
		{"engine namespace", "headers: X-Sluice-Job: X-Sluice-* headers", base(func(p *Parts) { p.Headers = map[string]string{"X-Sluice-Job": "x"} })},
		{"space in name", "headers: X Tag: invalid header name", base(func(p *Parts) { p.Headers = map[string]string{"X Tag": "x"} })},
		{"colon in name", "headers: X:Tag: invalid header name", base(func(p *Parts) { p.Headers = map[string]string{"X:Tag": "x"} })},
		{"non-ascii name", "headers: X-Tâg: invalid header name", base(func(p *Parts) { p.Headers = map[string]string{"X-Tâg": "x"} })},
		{"case duplicate", `headers: x-tag: same header as "X-Tag"`, base(func(p *Parts) { p.Headers = map[string]string{"X-Tag": "a", "x-tag": "b"} })},
		{"header template", "headers: X-Tag: template: X-Tag:1:", base(func(p *Parts) { p.Headers = map[string]string{"X-Tag": "{{"} })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.p)
			if err == nil || !strings.HasPrefix(err.Error(), tc.prefix) {
				t.Fatalf("err = %v, want prefix %q", err, tc.prefix)
			}
		})
	}
}

func TestLineEndingsNormalised(t *testing.T) {
	tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: "s",
		Text: "unix\nwindows\r\nold-mac\rend", HTML: "<p>a</p>\n<p>b</p>\r"})
	raw := mustRender(t, tm, "a@example.test", nil, Extra{})
	text, html := bodies(t, raw)
	if text != "unix\r\nwindows\r\nold-mac\r\nend" {
		t.Errorf("text = %q", text)
	}
	if html != "<p>a</p>\r\n<p>b</p>\r\n" {
		t.Errorf("html = %q", html)
	}
}

func TestLongCustomHeaderFolds(t *testing.T) {
	long := strings.Repeat("word ", 60) + "{{.x}}"
	tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: "s", Text: "x", Headers: map[string]string{"X-Long": long}})
	raw := mustRender(t, tm, "a@example.test", map[string]string{"x": "end"}, Extra{})
	m, _ := mail.ReadMessage(bytes.NewReader(raw))
	if got, want := m.Header.Get("X-Long"), strings.Repeat("word ", 60)+"end"; got != want {
		t.Errorf("unfolded = %q, want %q", got, want)
	}
	if n := bytes.Count(raw, []byte("\r\n word")); n < 3 {
		t.Errorf("expected several folds, got %d", n)
	}

	// A single 1,000-byte word cannot be folded at all in a structured
	// header: refused rather than sent over-long.
	_, err := tm.Render("a@example.test", map[string]string{"x": "e"}, Extra{Headers: []Header{{"List-Unsubscribe", "<https://x.test/" + strings.Repeat("a", 1000) + ">"}}})
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyCustomHeaderOmitted(t *testing.T) {
	tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: "s", Text: "x", Headers: map[string]string{"X-Opt": "{{.tag}}"}})
	raw := mustRender(t, tm, "a@example.test", map[string]string{"tag": "  "}, Extra{})
	if bytes.Contains(raw, []byte("X-Opt")) {
		t.Errorf("empty header written:\n%s", raw)
	}
}

func TestMessageID(t *testing.T) {
	tm := mustCompile(t, Parts{From: "News <n@Sluice.TEST>", Subject: "s", Text: "x"})
	ids := map[string]bool{}
	for i := 0; i < 3; i++ {
		m, _ := mail.ReadMessage(bytes.NewReader(mustRender(t, tm, "a@example.test", nil, Extra{})))
		id := m.Header.Get("Message-ID")
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@sluice.test>") || len(id) < 30 {
			t.Errorf("generated Message-ID %q", id)
		}
		ids[id] = true
	}
	if len(ids) != 3 {
		t.Errorf("Message-IDs repeat: %v", ids)
	}
	for _, bad := range []string{"abc@x", "<abc>", "<a b@x>", "<a@x>\r\nBcc: y"} {
		if _, err := tm.Render("a@example.test", nil, Extra{MessageID: bad}); err == nil {
			t.Errorf("Message-ID %q accepted", bad)
		}
	}
}

func TestDateDefaultsToNow(t *testing.T) {
	tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: "s", Text: "x"})
	before := time.Now().Truncate(time.Second)
	m, _ := mail.ReadMessage(bytes.NewReader(mustRender(t, tm, "a@example.test", nil, Extra{})))
	d, err := m.Header.Date()
	if err != nil || d.Before(before) || d.After(time.Now()) {
		t.Errorf("Date = %v (%v)", d, err)
	}
}

func TestRecipientAddressChecked(t *testing.T) {
	tm := mustCompile(t, Parts{From: "n@sluice.test", Subject: "s", Text: "{{.email}}"})
	for _, bad := range []string{"", "Bob <b@example.test>", "a@example.test, c@example.test", "b@example.test (x)", "nodomain", "a@@b.test", "a..b@x.test"} {
		if _, err := tm.Render(bad, nil, Extra{}); err == nil {
			t.Errorf("recipient %q accepted", bad)
		}
	}
	for _, good := range []string{"o'brien+tag@example.test", `"john doe"@example.test`, "jörg@exämple.test"} {
		raw := mustRender(t, tm, good, nil, Extra{})
		m, _ := mail.ReadMessage(bytes.NewReader(raw))
		if got := m.Header.Get("To"); got != good {
			t.Errorf("To = %q, want %q", got, good)
		}
	}
}

// TestConcurrentRender shares one Template across goroutines (run with
// -race) and checks each message carries its own recipient's data.
func TestConcurrentRender(t *testing.T) {
	tm := mustCompile(t, demoParts())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				name := strings.Repeat("n", g*i%40+1)
				raw, err := tm.Render("a@example.test", map[string]string{"first_name": name, "city": "c"}, demoExtra())
				if err != nil {
					t.Error(err)
					return
				}
				if text, _ := bodies(t, raw); !strings.HasPrefix(text, "Hi "+name+",") {
					t.Errorf("got someone else's body: %q", text)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkRender: "typical" is a ~4 KB newsletter with a handful of
// merge fields; "merge-heavy" has 40 fields per body, where html/template's
// per-action escaping dominates.
func BenchmarkRender(b *testing.B) {
	para := "Some paragraph of newsletter text, long enough to wrap a few times when encoded, with <b>markup</b>.\n"
	for _, bc := range []struct{ name, text, html string }{
		{"typical",
			"Hi {{.first_name}},\n" + strings.Repeat(para, 15) + "Greetings to {{.city}}.\nUnsubscribe: {{.UnsubscribeURL}}\n",
			"<p>Hi {{.first_name}},</p>\n" + strings.Repeat("<p>"+para+"</p>", 15) + "<p>Greetings to {{.city}}.</p><a href=\"{{.UnsubscribeURL}}\">unsubscribe</a>\n"},
		{"1KiB", // the benchmarks' 1 KiB campaign (enginetest.Campaign)
			"Hello {{.first_name}} from {{.city}}!\nThis is the text part of a campaign message, long enough to be realistic.\n",
			"<p>Hello <b>{{.first_name}}</b> from {{.city}}!</p><p>This is the HTML part.</p>"},
		{"merge-heavy",
			strings.Repeat("Text for {{.first_name}} in {{.city}}.\n", 20),
			strings.Repeat("<p>Text for <b>{{.first_name}}</b> in {{.city}}.</p>\n", 20)},
		{"100KiB",
			"Hi {{.first_name}},\n" + strings.Repeat(para, 300) + "Greetings to {{.city}}.\n",
			"<p>Hi {{.first_name}},</p>\n" + strings.Repeat("<p>"+para+"</p>\n", 700) + "<a href=\"{{.UnsubscribeURL}}\">unsubscribe</a>\n"},
	} {
		p := demoParts()
		p.Text, p.HTML = bc.text, bc.html
		tm := mustCompile(b, p)
		fields := map[string]string{"first_name": "Zoë", "city": "Oslo"}
		x := demoExtra()
		x.MessageID = ""
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				raw, err := tm.Render("zoe@example.test", fields, x)
				if err != nil {
					b.Fatal(err)
				}
				n = len(raw)
			}
			b.SetBytes(int64(n))
		})
		// Compose without Bytes: the message as pieces, to be streamed.
		b.Run(bc.name+"/compose", func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				m, err := tm.Compose("zoe@example.test", fields, x)
				if err != nil {
					b.Fatal(err)
				}
				n = m.Len()
				m.Release()
			}
			b.SetBytes(int64(n))
		})
		// The same with every template executed (no programs, fast.go).
		b.Run(bc.name+"/compose-templates", func(b *testing.B) {
			useProgram = false
			defer func() { useProgram = true }()
			b.ReportAllocs()
			for b.Loop() {
				m, err := tm.Compose("zoe@example.test", fields, x)
				if err != nil {
					b.Fatal(err)
				}
				m.Release()
			}
		})
	}
}

func TestCheckToBareAddress(t *testing.T) {
	for to, ok := range map[string]bool{
		"a@example.test": true, `"a b"@example.test`: true, "A.B+c@Example.TEST": true,
		"": false, " a@example.test": false, "Bob <a@example.test>": false, "a@localhost": false,
		"a@@example.test": false, "a..b@example.test": false,
	} {
		if err := checkTo(to); (err == nil) != ok {
			t.Errorf("checkTo(%q) = %v, want ok %v", to, err, ok)
		}
	}
}
