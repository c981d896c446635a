package message

import (
	"io"
	"strings"
	"text/template/parse"
)

// A merge template is most often text with plain {{.field}} actions (in
// HTML, escaped by html/template's htmlEscaper). text/template executes
// those through reflection, ~10 µs of every 1 KiB message; a program is
// the same tree walked directly: the text nodes written with one Write
// of the node's own bytes (as text/template does, so the static-text
// encoding finds them), the fields looked up in the data map. A tree
// holding anything else has no program and is executed by its template.
// A missing field is left to the template too, for its exact error.

// op is one step of a program: a text node's bytes, or a field.
type op struct {
	text   []byte
	field  string
	escape bool // html/template's text-context escaper
}

type program []op

// htmlEscaperName is the function html/template puts after an action in
// text context.
const htmlEscaperName = "_html_template_htmlescaper"

// compileProgram returns tree's program, or nil when it holds more than
// text and plain field actions (escaped only in text context when html).
func compileProgram(tree *parse.Tree, html bool) program {
	if tree == nil || tree.Root == nil {
		return nil
	}
	p := program{}
	for _, n := range tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			p = append(p, op{text: n.Text})
		case *parse.ActionNode:
			o, ok := fieldOp(n.Pipe, html)
			if !ok {
				return nil
			}
			p = append(p, o)
		default:
			return nil
		}
	}
	return p
}

// fieldOp reads {{.name}} (text) or {{.name | _html_template_htmlescaper}}
// (html).
func fieldOp(pipe *parse.PipeNode, html bool) (op, bool) {
	if pipe == nil || len(pipe.Decl) > 0 || pipe.IsAssign {
		return op{}, false
	}
	want := 1
	if html {
		want = 2
	}
	if len(pipe.Cmds) != want || len(pipe.Cmds[0].Args) != 1 {
		return op{}, false
	}
	f, ok := pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return op{}, false
	}
	if html {
		c := pipe.Cmds[1]
		id, ok := c.Args[0].(*parse.IdentifierNode)
		if len(c.Args) != 1 || !ok || id.Ident != htmlEscaperName {
			return op{}, false
		}
	}
	return op{field: f.Ident[0], escape: html}, true
}

// stringWriter is where a program writes: a bodyWriter or a header's
// buffer.
type stringWriter interface {
	io.Writer
	io.StringWriter
}

// run writes the program's output for data to w; ok is false, with
// nothing sensible written, when a field is missing (the caller then runs
// the template, for its error).
func (p program) run(w stringWriter, data map[string]string) (ok bool) {
	for _, o := range p {
		if o.text != nil {
			_, _ = w.Write(o.text)
			continue
		}
		v, found := data[o.field]
		if !found {
			return false
		}
		if o.escape {
			v = htmlEscape(v)
		}
		if v != "" {
			_, _ = w.WriteString(v)
		}
	}
	return true
}

// htmlReplacer is html/template's htmlEscaper for a string (its
// htmlReplacementTable; other runes, invalid UTF-8 included, pass as
// they are): TestHTMLEscapeMatchesHTMLTemplate holds it to that.
var htmlReplacer = strings.NewReplacer(
	"\x00", "\uFFFD",
	`"`, "&#34;",
	"&", "&amp;",
	"'", "&#39;",
	"+", "&#43;",
	"<", "&lt;",
	">", "&gt;",
)

func htmlEscape(s string) string {
	if !strings.ContainsAny(s, "\x00\"&'+<>") {
		return s
	}
	return htmlReplacer.Replace(s)
}
