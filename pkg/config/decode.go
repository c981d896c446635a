package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/yamlnode"

	"gopkg.in/yaml.v3"

	"github.com/sluice-mta/sluice/pkg/suggest"
)

// The file is first parsed into a yaml.Node tree and walked against the
// Config type, so an unknown key, a repeated key or a value of the wrong
// type is reported as "FILE:LINE: what, where" (with a suggestion for a
// misspelt key) instead of yaml.v3's "field x not found in type
// config.Delivery". Only a tree that passes is decoded into Config.

var durationType = reflect.TypeFor[time.Duration]()

// checker collects the errors of one file and the line of every key.
type checker struct {
	name  string
	errs  []lineError
	lines map[string]int // "delivery.port", "routes[0].host" → line of the key
}

type lineError struct {
	line int
	msg  string
}

func (c *checker) errorf(line int, format string, a ...any) {
	c.errs = append(c.errs, lineError{line, fmt.Sprintf(format, a...)})
}

// err is every error found, in line order, each starting "FILE:LINE: ".
func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(c.errs, func(a, b lineError) int { return a.line - b.line })
	errs := make([]error, len(c.errs))
	for i, e := range c.errs {
		errs[i] = c.at(e.line, errors.New(e.msg))
	}
	return errors.Join(errs...)
}

// at prefixes err with the file name and, when known, the line.
func (c *checker) at(line int, err error) error {
	if line > 0 {
		return fmt.Errorf("%s:%d: %w", c.name, line, err)
	}
	return fmt.Errorf("%s: %w", c.name, err)
}

// lineOf is the line of path's key, or of its nearest ancestor written in
// the file (a default that fails validation has no line of its own).
func (c *checker) lineOf(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

// decodeStrict parses data into c, reporting every problem with its line.
func decodeStrict(name string, data []byte, cfg *Config) (*checker, error) {
	c := &checker{name: name, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return c, c.syntax(err)
	}
	if len(doc.Content) == 0 {
		return c, nil // an empty file: every default
	}
	root := yamlnode.Deref(doc.Content[0])
	if root.Tag == "!!null" {
		return c, nil
	}
	c.node(root, reflect.TypeFor[Config](), "")
	if err := c.err(); err != nil {
		return c, err
	}
	if err := root.Decode(cfg); err != nil { // not expected once the walk passed
		return c, c.syntax(err)
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// syntax turns yaml.v3's "yaml: line 3: ..." into "FILE:3: ...".
func (c *checker) syntax(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return c.at(n, errors.New(m[2]))
	}
	return c.at(0, errors.New(strings.TrimPrefix(err.Error(), "yaml: ")))
}

// node checks n against type t; path names n in messages ("" is the
// top level).
func (c *checker) node(n *yaml.Node, t reflect.Type, path string) {
	n = yamlnode.Deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // the zero value, then the default
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			c.errorf(n.Line, "%s: want a duration (e.g. 30s, 5m, 1h), got a %s", path, yamlnode.KindName(n))
		} else if _, err := time.ParseDuration(n.Value); err != nil || n.Tag != "!!str" {
			c.errorf(n.Line, "%s: %q is not a duration (use e.g. 30s, 5m, 1h)", path, n.Value)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		c.mapping(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.errorf(n.Line, "%s: want a mapping of names to settings, got a %s", path, yamlnode.KindName(n))
			return
		}
		seen := map[string]int{}
		c.pairs(n, false, func(k, v *yaml.Node, merged bool) {
			if first, dup := seen[k.Value]; dup && !merged {
				c.errorf(k.Line, "duplicate key %q in %s (first at line %d)", k.Value, path, first)
				return
			}
			if !merged {
				seen[k.Value] = k.Line
			}
			p := path + "." + k.Value
			c.lines[p] = k.Line
			c.node(v, t.Elem(), p)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.errorf(n.Line, "%s: want a list, got a %s", path, yamlnode.KindName(n))
			return
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.lines[p] = e.Line
			c.node(e, t.Elem(), p)
		}
	default:
		c.scalar(n, t, path)
	}
}

// mapping checks a mapping against struct type t: every key must be one
// of its fields, once.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string) {
	where := ""
	if path != "" {
		where = " in " + path
	}
	if n.Kind != yaml.MappingNode {
		if path == "" {
			c.errorf(n.Line, "want a mapping of configuration keys, got a %s", yamlnode.KindName(n))
		} else {
			c.errorf(n.Line, "%s: want a mapping of keys, got a %s", path, yamlnode.KindName(n))
		}
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	seen := map[string]int{}
	c.pairs(n, false, func(k, v *yaml.Node, merged bool) {
		ft, ok := fields[k.Value]
		if !ok {
			c.errorf(k.Line, "unknown key %q%s%s", k.Value, where, suggest.Hint(k.Value, names))
			return
		}
		if first, dup := seen[k.Value]; dup && !merged {
			c.errorf(k.Line, "duplicate key %q%s (first at line %d)", k.Value, where, first)
			return
		}
		if !merged {
			seen[k.Value] = k.Line
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		c.lines[p] = k.Line
		c.node(v, ft, p)
	})
}

// pairs calls f for each key and value of mapping n, following merge
// keys (<<: *anchor); merged says a pair came from one, so a key written
// beside it overrides it rather than repeating it. A key that is not a
// plain scalar is reported.
func (c *checker) pairs(n *yaml.Node, merged bool, f func(k, v *yaml.Node, merged bool)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			v = yamlnode.Deref(v)
			merged := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				merged = v.Content
			}
			for _, m := range merged {
				if m = yamlnode.Deref(m); m.Kind == yaml.MappingNode {
					c.pairs(m, true, f)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			c.errorf(k.Line, "keys must be plain names, got a %s", yamlnode.KindName(k))
			continue
		}
		f(k, v, merged)
	}
}

// scalar checks a leaf value: decoding it alone into t must succeed.
func (c *checker) scalar(n *yaml.Node, t reflect.Type, path string) {
	want := map[reflect.Kind]string{
		reflect.String: "a string", reflect.Bool: "true or false",
		reflect.Float32: "a number", reflect.Float64: "a number",
	}[t.Kind()]
	if want == "" {
		want = "a whole number"
	}
	if n.Kind != yaml.ScalarNode {
		c.errorf(n.Line, "%s: want %s, got a %s", path, want, yamlnode.KindName(n))
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		c.errorf(n.Line, "%s: %q is not %s", path, n.Value, want)
	}
}
