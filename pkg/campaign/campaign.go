// Package campaign reads campaign files: a YAML spec (who sends what) and
// the recipients file it names, streamed one row at a time.
//
// Load validates everything it can before a single message is queued:
// unknown keys, addresses, templates, the recipients file's header, and
// merge fields the templates use but the CSV lacks. Every error names the
// file and, where there is one, the line.
package campaign

import (
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/yamlnode"
)

// Spec is one campaign file.
type Spec struct {
	ID          string            `yaml:"id"`          // required, [A-Za-z0-9._-]{1,64}
	From        string            `yaml:"from"`        // required RFC 5322 address, name optional
	ReplyTo     string            `yaml:"reply_to"`    // optional
	Subject     string            `yaml:"subject"`     // required template
	Text        string            `yaml:"text"`        // template; or TextFile
	TextFile    string            `yaml:"text_file"`   // relative to the YAML file
	HTML        string            `yaml:"html"`        // template; or HTMLFile
	HTMLFile    string            `yaml:"html_file"`   // relative to the YAML file
	Recipients  string            `yaml:"recipients"`  // required; .csv, .jsonl or .ndjson
	Lane        string            `yaml:"lane"`        // "marketing" (default) or "transactional"
	Headers     map[string]string `yaml:"headers"`     // extra headers; values are templates
	Unsubscribe Unsubscribe       `yaml:"unsubscribe"` // mailto for List-Unsubscribe
	ReturnPath  string            `yaml:"return_path"` // envelope sender; Load defaults it to From
	SendAt      time.Time         `yaml:"send_at"`     // RFC 3339; zero = now
	VERP        bool              `yaml:"verp"`        // tag the envelope sender with the job id (package verp)
	// Pool is the engine's pool of egress sources to send from, overriding
	// the lane's (lanes.marketing.pool). Campaign files are read without
	// the engine configuration, so any well-formed name is accepted here;
	// launch (given -config) and the engine check it names a pool.
	Pool string `yaml:"pool" json:"Pool,omitempty"`
	Path string `yaml:"-"` // the file it came from

	tmpl *message.Template
}

// Unsubscribe adds a mailto: address to List-Unsubscribe (RFC 2369 §3.2)
// beside the engine's one-click URL.
type Unsubscribe struct {
	Mailto string `yaml:"mailto"`
}

// Lanes.
const (
	Marketing     = "marketing"
	Transactional = "transactional"
)

// keys are the campaign file's keys, in documentation order.
var keys = []string{"id", "from", "reply_to", "subject", "text", "text_file", "html", "html_file",
	"recipients", "lane", "pool", "headers", "unsubscribe", "return_path", "send_at", "verp"}

var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Parts are the message templates (Text and HTML already hold the
// contents of text_file and html_file).
func (s *Spec) Parts() message.Parts {
	return message.Parts{From: s.From, ReplyTo: s.ReplyTo, Subject: s.Subject,
		Text: s.Text, HTML: s.HTML, Headers: s.Headers}
}

// Template is the compiled message, ready to Render.
func (s *Spec) Template() *message.Template { return s.tmpl }

// RecipientsPath is the recipients file, resolved against the YAML file's
// directory.
func (s *Spec) RecipientsPath() string { return s.resolve(s.Recipients) }

func (s *Spec) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(s.Path), p)
}

// Load reads and validates a campaign file. Errors read
// "path:line: what is wrong"; several independent problems are reported
// together, one per line.
func Load(path string) (*Spec, error) { return LoadWith(path, LoadOptions{}) }

// LoadWith is Load with options.
func LoadWith(path string, opt LoadOptions) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(path, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty file: want a mapping of campaign keys (%s)", path, strings.Join(keys, ", "))
	}
	root := yamlnode.Deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of campaign keys, got a %s", path, root.Line, yamlnode.KindName(root))
	}
	l := &loader{path: path, s: &Spec{Path: path}, line: map[string]int{}, headerLine: map[string]int{}, suggested: map[string]bool{}, opt: opt}
	l.decode(root)
	l.validate()
	if len(l.errs) == 0 { // templates and recipients only once the basics hold
		l.compile()
	}
	if len(l.errs) == 0 {
		l.checkRecipients()
	}
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, func(a, b lineError) int { return a.line - b.line })
		errs := make([]error, len(l.errs))
		for i, e := range l.errs {
			errs[i] = e.err
		}
		return nil, errors.Join(errs...)
	}
	return l.s, nil
}

// loader carries the spec being built, where each key was, and the
// errors found so far.
type loader struct {
	path       string
	s          *Spec
	line       map[string]int // key → line of its value
	headerLine map[string]int // header name → line
	suggested  map[string]bool
	errs       []lineError
	opt        LoadOptions
}

type lineError struct {
	line int
	err  error
}

func (l *loader) errorf(line int, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if line > 0 {
		l.errs = append(l.errs, lineError{line, fmt.Errorf("%s:%d: %s", l.path, line, msg)})
	} else {
		l.errs = append(l.errs, lineError{0, fmt.Errorf("%s: %s", l.path, msg)})
	}
}

// validate checks what decoding cannot: required keys, exclusive pairs,
// addresses, the ID and lane, and loads the *_file bodies.
func (l *loader) validate() {
	s := l.s
	for _, k := range []string{"id", "from", "subject", "recipients"} {
		if _, ok := l.line[k]; !ok && !l.suggested[k] { // a misspelling already said "did you mean"
			l.errorf(0, "missing required key %q", k)
		}
	}
	if l.has("id") && !validID.MatchString(s.ID) {
		l.errorf(l.line["id"], "id: %q must be 1-64 characters of A-Z a-z 0-9 . _ -", s.ID)
	}
	if !l.has("from") {
		// reported above
	} else if a, err := mail.ParseAddress(s.From); err != nil {
		l.errorf(l.line["from"], "from: invalid address %q: %s", s.From, strings.TrimPrefix(err.Error(), "mail: "))
	} else if _, err := address.Normalize(a.Address); err != nil {
		l.errorf(l.line["from"], "from: %v", err)
	} else if s.ReturnPath == "" {
		s.ReturnPath = a.Address
	}
	if s.ReturnPath != "" {
		if rp, err := address.Normalize(s.ReturnPath); err != nil {
			l.errorf(l.line["return_path"], "return_path: %v", err)
		} else {
			s.ReturnPath = rp
		}
	}
	if s.Unsubscribe.Mailto != "" {
		if m, err := address.Normalize(s.Unsubscribe.Mailto); err != nil {
			l.errorf(l.line["unsubscribe.mailto"], "unsubscribe.mailto: %v", err)
		} else {
			s.Unsubscribe.Mailto = m
		}
	}
	if s.Pool != "" && !validID.MatchString(s.Pool) {
		l.errorf(l.line["pool"], "pool: %q must be 1-64 characters of A-Z a-z 0-9 . _ - (a pool name of the engine configuration)", s.Pool)
	}
	switch s.Lane {
	case "":
		s.Lane = Marketing
	case Marketing, Transactional:
	default:
		l.errorf(l.line["lane"], "lane: %q: want %q or %q", s.Lane, Marketing, Transactional)
	}
	s.Text = l.body("text", s.Text, s.TextFile)
	s.HTML = l.body("html", s.HTML, s.HTMLFile)
	if !l.has("text") && !l.has("text_file") && !l.has("html") && !l.has("html_file") {
		l.errorf(0, "missing body: set text, text_file, html or html_file (a text and an html one make a multipart message)")
	}
}

func (l *loader) has(key string) bool { _, ok := l.line[key]; return ok }

// body returns the inline template or the named file's contents.
func (l *loader) body(key, inline, file string) string {
	if file == "" {
		if len(inline) > MaxTemplateBytes {
			l.errorf(l.line[key], "%s: %s template, larger than %s, the limit for a template (a message body this size would be clipped or refused anyway)", key, Size(len(inline)), Size(MaxTemplateBytes))
			return ""
		}
		return inline
	}
	if l.has(key) {
		l.errorf(l.line[key+"_file"], "%s and %s_file are exclusive: use one", key, key)
		return ""
	}
	p := l.s.resolve(file)
	b, err := readTemplate(filepath.Dir(l.path), p, l.opt.AllowOutside)
	if err != nil {
		l.errorf(l.line[key+"_file"], "%s_file: %v", key, err)
		return ""
	}
	if !utf8.Valid(b) {
		l.errorf(l.line[key+"_file"], "%s_file: %s is not valid UTF-8", key, p)
		return ""
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		l.errorf(l.line[key+"_file"], "%s_file: %s is empty", key, p)
		return ""
	}
	return string(b)
}

// compile builds the message template, mapping a failing part back to
// the key (and line) it came from.
func (l *loader) compile() {
	t, err := message.Compile(l.s.Parts())
	if err != nil {
		l.partError(err, "")
		return
	}
	l.s.tmpl = t
}

// partError reports a *message.PartError at the line of the key it
// came from; hint is appended to the message.
func (l *loader) partError(err error, hint string) {
	var pe *message.PartError
	if !errors.As(err, &pe) {
		l.errorf(0, "%v%s", err, hint)
		return
	}
	key := pe.Part
	if (key == "text" && l.s.TextFile != "") || (key == "html" && l.s.HTMLFile != "") {
		file := l.s.resolve(map[string]string{"text": l.s.TextFile, "html": l.s.HTMLFile}[key])
		l.errorf(l.line[key+"_file"], "%s_file: %s: %v%s", key, file, pe.Err, hint)
		return
	}
	if key == "headers" {
		l.errorf(l.headerLine[pe.Header], "headers: %s: %v%s", pe.Header, pe.Err, hint)
		return
	}
	l.errorf(l.line[key], "%s: %v%s", key, pe.Err, hint)
}

// checkRecipients opens the recipients file to check its header and, for
// a CSV, renders the templates once with its columns so a field the
// templates use but the file lacks ({{.frist_name}}) fails now, not on
// every recipient.
func (l *loader) checkRecipients() {
	line := l.line["recipients"]
	p := l.s.RecipientsPath()
	r, err := OpenRecipients(p)
	if err != nil {
		l.errorf(line, "recipients: %v", err)
		return
	}
	cols := r.Columns()
	r.Close()
	if cols == nil {
		return
	}
	// The same fields a row will have: the email column is not among
	// them (templates get the address as {{.email}}).
	others := slices.DeleteFunc(slices.Clone(cols), func(c string) bool { return strings.EqualFold(c, "email") })
	fields := make(map[string]string, len(others))
	for _, c := range others {
		fields[c] = "x"
	}
	_, err = l.s.tmpl.Render("check@example.invalid", fields, message.Extra{UnsubscribeURL: "https://example.invalid/u"})
	if err != nil && strings.Contains(err.Error(), "map has no entry for key") {
		l.partError(err, fmt.Sprintf(" (%s has columns: %s; the address is {{.email}})", p, strings.Join(others, ", ")))
	}
}
