package launch

import (
	"fmt"
	"strings"
	"text/template/parse"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/message"
)

// renderCheck tells whether a recipient's message can be rendered, and is
// small enough, without rendering it where it can. Most campaigns' templates
// do nothing but insert fields ({{.first_name}}): their render can fail
// only for a field the row lacks, and the message's size is bounded by the
// size with every field empty plus a few times the fields' lengths. For
// those, a row whose fields are all there and whose bound is under the
// limit passes at the cost of a few map lookups; any other row, and every
// row of templates using functions, conditions or loops, is composed in
// full (message.Template.Compose) as the engine will.
type renderCheck struct {
	tmpl   *message.Template
	simple bool           // every action of every template is a plain {{.field}}
	refs   map[string]int // field → how many times the templates insert it
	base   int            // bytes of the message with every field empty
}

// expansion bounds how many bytes one byte of a field can become in the
// message: HTML escaping (" → &#34;, 5), quoted-printable (=XX, 3), RFC
// 2047 encoded words with their folding (under 4).
const expansion = 8

// boundSlack covers what varies besides the fields (folding, the
// Message-ID's length).
const boundSlack = 4 << 10

// unsubscribeCheck is the one-click URL a check renders with.
const unsubscribeCheck = "https://unsubscribe.invalid/u/check"

func newRenderCheck(parts message.Parts, tmpl *message.Template) *renderCheck {
	c := &renderCheck{tmpl: tmpl, simple: true, refs: map[string]int{}}
	srcs := []string{parts.Subject, parts.Text, parts.HTML}
	for _, v := range parts.Headers {
		srcs = append(srcs, strings.TrimSpace(v))
	}
	for _, src := range srcs {
		if src != "" && !c.collect(src) {
			c.simple = false
			return c
		}
	}
	empty := make(map[string]string, len(c.refs))
	for f := range c.refs {
		empty[f] = ""
	}
	m, err := tmpl.Compose("a@b.invalid", empty, message.Extra{UnsubscribeURL: unsubscribeCheck})
	if err != nil {
		c.simple = false
		return c
	}
	c.base = m.Len()
	m.Release()
	return c
}

// collect adds src's fields to refs, and reports whether src is simple.
func (c *renderCheck) collect(src string) bool {
	t := parse.New("check")
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(src, "", "", trees); err != nil || len(trees) != 1 {
		return false
	}
	for _, n := range t.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode, *parse.CommentNode:
		case *parse.ActionNode:
			f := plainField(n.Pipe)
			if f == "" {
				return false
			}
			c.refs[f]++
		default:
			return false
		}
	}
	return true
}

// plainField is the field a pipeline is nothing but ({{.name}}), or "".
func plainField(p *parse.PipeNode) string {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return ""
	}
	if f, ok := p.Cmds[0].Args[0].(*parse.FieldNode); ok && len(f.Ident) == 1 {
		return f.Ident[0]
	}
	return ""
}

// check returns why rc's message cannot be sent, or nil.
func (c *renderCheck) check(rc campaign.Recipient) error {
	if c.simple && c.fits(rc) {
		return nil
	}
	m, err := c.tmpl.Compose(rc.Email, rc.Fields, message.Extra{UnsubscribeURL: unsubscribeCheck})
	if err != nil {
		return err
	}
	n := m.Len()
	m.Release()
	if n > campaign.MaxMessageBytes {
		return fmt.Errorf("the message would be %s, larger than %s, the limit for one message", campaign.Size(n), campaign.Size(campaign.MaxMessageBytes))
	}
	return nil
}

// fits reports whether rc has every field the templates insert and its
// message's size bound is under the limit.
func (c *renderCheck) fits(rc campaign.Recipient) bool {
	size := c.base + boundSlack + expansion*len(rc.Email)
	for f, times := range c.refs {
		var v string
		switch f {
		case "email":
			v = rc.Email
		case "UnsubscribeURL":
			continue // in base
		default:
			var ok bool
			if v, ok = rc.Fields[f]; !ok {
				return false
			}
		}
		size += expansion * len(v) * times
	}
	return size <= campaign.MaxMessageBytes
}
