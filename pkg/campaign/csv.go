package campaign

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-mta/sluice/pkg/address"
)

func (r *Reader) openCSV(br *bufio.Reader) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // a short row is one bad recipient, not the end of the file
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf(`%s: empty file: want a header row with an "email" column`, r.path)
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s:%d: header: %w", r.path, pe.StartLine, pe.Err)
		}
		return fmt.Errorf("%s: %w", r.path, err)
	}
	line, _ := cr.FieldPos(0)
	cols := make([]string, len(head))
	emailCol := -1
	seen := make(map[string]bool, len(head))
	for i, h := range head {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return fmt.Errorf("%s:%d: column %d has no name", r.path, line, i+1)
		case strings.ContainsAny(h, "\r\n\x00"):
			return fmt.Errorf("%s:%d: column %d name contains a line break", r.path, line, i+1)
		case seen[h]:
			return fmt.Errorf("%s:%d: duplicate column %q", r.path, line, h)
		case strings.EqualFold(h, "email"):
			if emailCol >= 0 {
				return fmt.Errorf("%s:%d: two email columns (%q and %q)", r.path, line, cols[emailCol], h)
			}
			emailCol = i
		}
		seen[h] = true
		cols[i] = h
	}
	if emailCol < 0 {
		hint := ""
		if len(cols) == 1 && strings.ContainsAny(cols[0], ";\t") {
			hint = "; the file looks semicolon- or tab-separated, but only commas are supported"
		}
		return fmt.Errorf(`%s:%d: no "email" column in header (columns: %s)%s`, r.path, line, strings.Join(cols, ", "), hint)
	}
	r.columns = cols
	r.next = func() (Recipient, error) { return r.nextCSV(cr, cols, emailCol) }
	return nil
}

func (r *Reader) nextCSV(cr *csv.Reader, cols []string, emailCol int) (Recipient, error) {
	rec, err := cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			reason := "malformed CSV: " + pe.Err.Error()
			if pe.Line > pe.StartLine {
				// An unbalanced quote swallows the lines after it into one
				// field; say so, since those recipients were not read.
				lost := fmt.Sprintf("line %d was", pe.Line)
				if pe.Line > pe.StartLine+1 {
					lost = fmt.Sprintf("lines %d-%d were", pe.StartLine+1, pe.Line)
				}
				reason += fmt.Sprintf(" (the record runs on to line %d: %s not read as recipients)", pe.Line, lost)
			}
			return Recipient{}, &RecipientError{Path: r.path, Line: pe.StartLine, Reason: reason}
		}
		return Recipient{}, err // io.EOF or I/O
	}
	line, _ := cr.FieldPos(0)
	bad := func(email, reason string) (Recipient, error) {
		return Recipient{}, &RecipientError{Path: r.path, Line: line, Email: email, Reason: reason}
	}
	raw := ""
	if emailCol < len(rec) {
		raw = rec[emailCol]
	}
	if len(rec) != len(cols) {
		return bad(raw, fmt.Sprintf("has %d fields, the header has %d", len(rec), len(cols)))
	}
	email, err := address.Normalize(raw)
	if err != nil {
		return bad(raw, err.Error())
	}
	fields := r.newFields(len(cols) - 1)
	for i, v := range rec {
		if i == emailCol {
			continue
		}
		if reason := checkField(cols[i], v); reason != "" {
			if strings.ContainsAny(v, "\r\n") {
				reason += fmt.Sprintf(" (a quoted field ran over %d lines)", strings.Count(v, "\n")+1)
			}
			return bad(raw, email+": "+reason)
		}
		fields[cols[i]] = v
	}
	return Recipient{Line: line, Email: email, Fields: fields}, nil
}
