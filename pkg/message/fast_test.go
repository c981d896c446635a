package message

import (
	"bytes"
	htmltemplate "html/template"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestHTMLEscapeMatchesHTMLTemplate: htmlEscape is what html/template
// writes for a field in text context.
func TestHTMLEscapeMatchesHTMLTemplate(t *testing.T) {
	tm := htmltemplate.Must(htmltemplate.New("h").Parse("<p>{{.x}}</p>"))
	pieces := []string{"a", "<", ">", "&", "'", "\"", "+", "\x00", "\xff", "\xe2\x80", "é", "😀", "\ufdd0", "\uffff", " ", "\n", "&amp;", "=", "`"}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for n := rng.IntN(8); n > 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		var want bytes.Buffer
		if err := tm.Execute(&want, map[string]string{"x": b.String()}); err != nil {
			t.Fatal(err)
		}
		if got := "<p>" + htmlEscape(b.String()) + "</p>"; got != want.String() {
			t.Fatalf("htmlEscape(%q) = %q; html/template %q", b.String(), got, want.String())
		}
	}
}

// TestProgramsAreUsedWhereTheyApply: plain templates get programs;
// control structures, other escaping contexts and nested templates do
// not.
func TestProgramsAreUsedWhereTheyApply(t *testing.T) {
	p := demoParts()
	p.Subject, p.Text, p.HTML = "Hi {{.first_name}}", "{{.first_name}}\nstatic\n", "<p>{{.first_name}}</p>"
	tm := mustCompile(t, p)
	if tm.subjectProg == nil || tm.textProg == nil || tm.htmlProg == nil {
		t.Fatalf("programs: subject %v, text %v, html %v; want all three", tm.subjectProg, tm.textProg, tm.htmlProg)
	}
	for _, body := range []string{`<a href="{{.first_name}}">x</a>`, `{{if .city}}x{{end}}`, `<script>var a = {{.city}};</script>`, `{{.first_name | printf "%s"}}`} {
		p.HTML = body
		if tm := mustCompile(t, p); tm.htmlProg != nil {
			t.Errorf("html %q has a program %v", body, tm.htmlProg)
		}
	}
}

// TestMissingFieldFailsAsTheTemplateDoes: with a field missing, Render
// returns the template's own error, with programs or without.
func TestMissingFieldFailsAsTheTemplateDoes(t *testing.T) {
	p := demoParts()
	p.Subject, p.Text, p.HTML = "Hi {{.first_name}}", "{{.first_name}} {{.nope}}\n", "<p>{{.nope}}</p>"
	tm := mustCompile(t, p)
	for _, fields := range []map[string]string{{}, {"first_name": "x"}, {"first_name": "x", "nope": "y"}} {
		_, err := tm.Render("a@example.test", fields, demoExtra())
		useProgram = false
		_, ref := tm.Render("a@example.test", fields, demoExtra())
		useProgram = true
		if (err == nil) != (ref == nil) || (err != nil && err.Error() != ref.Error()) {
			t.Fatalf("fields %v: error %v; without programs %v", fields, err, ref)
		}
		if len(fields) < 2 && err == nil {
			t.Fatalf("fields %v: no error", fields)
		}
	}
}
