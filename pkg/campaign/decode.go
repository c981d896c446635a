package campaign

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/yamlnode"

	"gopkg.in/yaml.v3"

	"github.com/sluice-mta/sluice/pkg/suggest"
)

// The file is decoded from a yaml.Node tree rather than straight into
// Spec so every error can carry the line of the key it is about, and
// unknown or repeated keys are caught with theirs.

func (l *loader) decode(root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], yamlnode.Deref(root.Content[i+1])
		key := k.Value
		if k.Kind != yaml.ScalarNode {
			l.errorf(k.Line, "keys must be plain names, got a %s", yamlnode.KindName(k))
			continue
		}
		if first, dup := l.line[key]; dup {
			l.errorf(k.Line, "duplicate key %q (first at line %d)", key, first)
			continue
		}
		if !slices.Contains(keys, key) {
			l.suggested[suggest.Closest(key, keys)] = true
			l.errorf(k.Line, "unknown key %q%s", key, suggest.Hint(key, keys))
			continue
		}
		l.line[key] = k.Line
		switch key {
		case "headers":
			l.headers(v)
		case "unsubscribe":
			l.unsubscribe(v)
		case "send_at":
			l.sendAt(v)
		case "verp":
			if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
				l.errorf(k.Line, "verp: want true or false")
				continue
			}
			l.s.VERP = v.Value == "true"
		default:
			*l.field(key) = l.str(key, k.Line, v)
		}
	}
}

// field is the Spec string a plain key decodes into.
func (l *loader) field(key string) *string {
	s := l.s
	return map[string]*string{
		"id": &s.ID, "from": &s.From, "reply_to": &s.ReplyTo, "subject": &s.Subject,
		"text": &s.Text, "text_file": &s.TextFile, "html": &s.HTML, "html_file": &s.HTMLFile,
		"recipients": &s.Recipients, "lane": &s.Lane, "pool": &s.Pool, "return_path": &s.ReturnPath,
	}[key]
}

// str is a scalar's text; null is empty. Numbers and booleans are taken
// as written (an id of 2025 is the string "2025").
func (l *loader) str(key string, line int, v *yaml.Node) string {
	if v.Kind != yaml.ScalarNode {
		l.errorf(line, "%s: want a string, got a %s", key, yamlnode.KindName(v))
		return ""
	}
	if v.Tag == "!!null" {
		return ""
	}
	return v.Value
}

func (l *loader) headers(v *yaml.Node) {
	if v.Tag == "!!null" {
		return
	}
	if v.Kind != yaml.MappingNode {
		l.errorf(l.line["headers"], "headers: want a mapping of header names to values, got a %s", yamlnode.KindName(v))
		return
	}
	l.s.Headers = make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, hv := v.Content[i], yamlnode.Deref(v.Content[i+1])
		if first, dup := l.headerLine[k.Value]; dup {
			l.errorf(k.Line, "headers: duplicate header %q (first at line %d)", k.Value, first)
			continue
		}
		l.headerLine[k.Value] = k.Line
		l.s.Headers[k.Value] = l.str("headers: "+k.Value, k.Line, hv)
	}
}

func (l *loader) unsubscribe(v *yaml.Node) {
	if v.Tag == "!!null" {
		return
	}
	if v.Kind != yaml.MappingNode {
		l.errorf(l.line["unsubscribe"], "unsubscribe: want a mapping (mailto: address), got a %s", yamlnode.KindName(v))
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, uv := v.Content[i], yamlnode.Deref(v.Content[i+1])
		if k.Value != "mailto" {
			l.errorf(k.Line, "unknown key %q in unsubscribe%s", k.Value, suggest.Hint(k.Value, []string{"mailto"}))
			continue
		}
		l.line["unsubscribe.mailto"] = k.Line
		l.s.Unsubscribe.Mailto = l.str("unsubscribe.mailto", k.Line, uv)
	}
}

func (l *loader) sendAt(v *yaml.Node) {
	s := l.str("send_at", l.line["send_at"], v)
	if s == "" {
		return
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		l.errorf(l.line["send_at"], "send_at: invalid time %q: want RFC 3339 with a zone, such as 2025-06-01T09:00:00Z", s)
		return
	}
	l.s.SendAt = t
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns yaml.v3's "yaml: line 3: ..." into "path:3: ...".
func yamlError(path string, err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return fmt.Errorf("%s:%d: %s", path, n, m[2])
	}
	return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
}
