// Package lint checks a campaign the way launch would, without enqueuing
// anything, and goes further than launch can: it renders the first
// recipients' messages, warns about marketing mail without an unsubscribe
// and a From domain the engine cannot sign for, and looks up the From
// domain's SPF, DKIM and DMARC records. Problems that would stop a launch
// are errors; what would merely hurt delivery is a warning.
package lint

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/launch"
)

// Severities of a Finding.
const (
	Error   = "error"   // launch would refuse the campaign
	Warning = "warning" // it would launch, but mail may be lost, junked or unlawful
	OK      = "ok"      // a check that passed, said so the reader knows it ran
)

// Finding is one result.
type Finding struct {
	Severity string `json:"severity"`
	Check    string `json:"check"` // campaign, recipients, render, unsubscribe, dkim, spf, dmarc, send_at, size, smtputf8
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Message  string `json:"message"`
}

// String is the finding as one line, "file:line: message" when it has a
// place.
func (f Finding) String() string {
	switch {
	case f.File != "" && f.Line > 0:
		return f.File + ":" + strconv.Itoa(f.Line) + ": " + f.Message
	case f.File != "":
		return f.File + ": " + f.Message
	}
	return f.Message
}

// Options tune Run.
type Options struct {
	// Config is the engine configuration (DKIM keys, unsubscribe); nil
	// means unknown, which is itself worth a warning.
	Config *config.Config
	// Offline skips the DNS checks.
	Offline bool
	// DNS is the resolver "ip:port"; empty reads /etc/resolv.conf.
	DNS string
	// Timeout bounds each DNS query (default 5 s).
	Timeout time.Duration
	// Render is how many of the first recipients to render with their own
	// data (default 10).
	Render int
	// SkipInvalid reports invalid recipients as warnings, as launch
	// --skip-invalid would skip them; by default they are errors.
	SkipInvalid bool
	// AllowOutside lets text_file/html_file name files outside the
	// campaign file's directory (launch.Options).
	AllowOutside bool
}

// Report is everything Run found.
type Report struct {
	File       string    `json:"file"`
	ID         string    `json:"id,omitempty"`
	Lane       string    `json:"lane,omitempty"`
	FromDomain string    `json:"from_domain,omitempty"`
	Valid      int       `json:"valid_recipients"`
	Invalid    int       `json:"invalid_recipients"`
	Findings   []Finding `json:"findings"`
}

// Count returns how many findings have severity sev.
func (r *Report) Count(sev string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == sev {
			n++
		}
	}
	return n
}

func (r *Report) add(sev, check, msg string) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Check: check, Message: msg})
}

func (r *Report) addAt(sev, check, file string, line int, msg string) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Check: check, File: file, Line: line, Message: msg})
}

// Run lints the campaign file at path. The error is for lint itself
// failing (a cancelled context); problems with the campaign are findings.
func Run(ctx context.Context, path string, opt Options) (*Report, error) {
	if opt.Render <= 0 {
		opt.Render = 10
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	rep := &Report{File: path, Findings: []Finding{}}
	// SkipInvalid so Check reports every invalid recipient instead of
	// stopping at the first: lint lists them all.
	spec, res, err := launch.Check(path, launch.Options{SkipInvalid: true, AllowOutside: opt.AllowOutside})
	rep.Valid, rep.Invalid = res.Valid, res.InvalidN
	if err != nil {
		addErrors(rep, err)
	}
	if spec == nil {
		return rep, nil
	}
	rep.ID, rep.Lane = spec.ID, spec.Lane
	if t := spec.Template(); t != nil {
		rep.FromDomain = t.FromDomain()
	}
	sev := Error
	if opt.SkipInvalid {
		sev = Warning
	}
	for _, bad := range res.Invalid {
		check := "recipients"
		if strings.Contains(bad.Reason, "cannot render the message") {
			check = "render"
		}
		rep.addAt(sev, check, bad.Path, bad.Line, bad.Reason)
	}
	if more := res.InvalidN - len(res.Invalid); more > 0 {
		rep.addAt(sev, "recipients", spec.RecipientsPath(), 0, strconv.Itoa(more)+" more invalid recipients not listed")
	}
	for _, u := range res.UTF8 {
		rep.addAt(Warning, "smtputf8", u.Path, u.Line, u.Reason)
	}
	if more := res.UTF8N - len(res.UTF8); more > 0 {
		rep.addAt(Warning, "smtputf8", spec.RecipientsPath(), 0, strconv.Itoa(more)+" more recipients with a non-ASCII local part (need SMTPUTF8) not listed")
	}
	if res.Valid == 0 && err == nil {
		rep.addAt(Error, "recipients", spec.RecipientsPath(), 0, "no valid recipients")
	}
	checkContent(rep, spec, opt)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if !opt.Offline && rep.FromDomain != "" {
		if err := checkDNS(ctx, rep, spec, opt); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// loc matches the "path:line: " or "path: " that campaign and launch
// errors start with.
var loc = regexp.MustCompile(`^(.+?):(\d+): (.*)$`)

// addErrors turns a (possibly joined) campaign error into findings, one
// per line, keeping the file and line as fields for --json.
func addErrors(rep *Report, err error) {
	var lines []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			lines = append(lines, e.Error())
		}
	} else {
		lines = strings.Split(err.Error(), "\n")
	}
	for _, l := range lines {
		check := "campaign"
		if strings.Contains(l, "cannot render") {
			check = "render"
		}
		if m := loc.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[2])
			rep.addAt(Error, check, m[1], n, m[3])
			continue
		}
		if file, msg, ok := strings.Cut(l, ": "); ok && isFile(file) {
			rep.addAt(Error, check, file, 0, msg)
			continue
		}
		rep.add(Error, check, l)
	}
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
