package campaign

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Recipient is one valid row of a recipients file.
type Recipient struct {
	Line   int               // physical line where the record starts
	Email  string            // normalised (address.Normalize)
	Fields map[string]string // merge fields: every other column or key
}

// RecipientError is one bad row. The Reader has already moved past it.
type RecipientError struct {
	Path   string
	Line   int
	Email  string // as written, when there was one
	Reason string
}

func (e *RecipientError) Error() string { return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Reason) }

// Reader streams a recipients file one record at a time, so a list of
// millions never sits in memory.
type Reader struct {
	path    string
	f       *os.File
	next    func() (Recipient, error)
	columns []string
	fatal   error
	// reuse: every Recipient's Fields is this one map, cleared at each
	// Next (ReuseFields).
	reuse  bool
	fields map[string]string
}

// ReuseFields makes Next return the same Fields map each time, refilled:
// a Recipient's Fields is then valid only until the next call. A pass
// that looks at each row once (validation) spares a map per row.
func (r *Reader) ReuseFields() { r.reuse = true }

// newFields is the Fields map of the next Recipient, for n fields.
func (r *Reader) newFields(n int) map[string]string {
	if !r.reuse {
		return make(map[string]string, n)
	}
	if r.fields == nil {
		r.fields = make(map[string]string, n)
	}
	clear(r.fields)
	return r.fields
}

// bufSize is the read buffer; records are parsed out of it in place.
const bufSize = 64 << 10

// OpenRecipients opens a .csv, .jsonl or .ndjson file and checks its
// header (CSV). CSV needs a header row with an "email" column (matched
// case-insensitively, trimmed); the other columns become merge fields.
// JSONL holds one object per line with an "email" key; its other scalar
// values become string fields.
func OpenRecipients(path string) (*Reader, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".csv" && ext != ".jsonl" && ext != ".ndjson" {
		return nil, fmt.Errorf("%s: unsupported recipients format %q: want .csv, .jsonl or .ndjson", path, ext)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, bufSize)
	// A UTF-8 byte order mark, as spreadsheet exports write, is not data.
	if b, _ := br.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		br.Discard(3)
	}
	r := &Reader{path: path, f: f}
	if ext == ".csv" {
		err = r.openCSV(br)
	} else {
		r.openJSONL(br)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// Columns are the CSV header's names (email included), or nil for JSONL,
// whose keys may differ from line to line.
func (r *Reader) Columns() []string { return r.columns }

// Next returns the next valid recipient, io.EOF at the end, or a
// *RecipientError for a bad record; the call after a *RecipientError
// continues with the following record. Any other error (I/O) is final.
func (r *Reader) Next() (Recipient, error) {
	if r.fatal != nil {
		return Recipient{}, r.fatal
	}
	rec, err := r.next()
	if err != nil && err != io.EOF {
		var re *RecipientError
		if !errors.As(err, &re) {
			r.fatal = fmt.Errorf("%s: %w", r.path, err)
			return Recipient{}, r.fatal
		}
	}
	return rec, err
}

// Close releases the file.
func (r *Reader) Close() error { return r.f.Close() }

// checkField refuses a merge value that would be unsafe in a header or
// is not text: merge fields can land in Subject and custom headers.
func checkField(name, v string) string {
	if len(v) > MaxFieldBytes {
		return fmt.Sprintf("field %q is %s, larger than %s, the limit for a merge field", name, Size(len(v)), Size(MaxFieldBytes))
	}
	if hasLineBreak(v) {
		return fmt.Sprintf("field %q contains a line break or NUL (refused: it could inject mail headers)", name)
	}
	if !utf8.ValidString(v) {
		return fmt.Sprintf("field %q is not valid UTF-8 (save the file as UTF-8)", name)
	}
	return ""
}

// hasLineBreak reports CR, LF or NUL in s.
func hasLineBreak(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return true
		}
	}
	return false
}
