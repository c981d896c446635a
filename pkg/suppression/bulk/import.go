package bulk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/suggest"
	"github.com/sluice-mta/sluice/pkg/suppression"
)

// MaxBadLines caps ImportResult.Bad; BadCount still counts every bad line.
const MaxBadLines = 100

// maxJSONLine bounds one JSONL line (an entry is well under 2 KB).
const maxJSONLine = 64 << 10

// LineError is one line Import skipped, or, returned as the error, the
// line that stopped it (a bad header).
type LineError struct {
	Line int    // 1-based line number in the input (where the record starts)
	Err  string // what is wrong with it
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Err) }

// ImportResult says what Import did: the entries added, updated (merged
// as suppression's Add does) and unchanged, and the lines skipped.
type ImportResult struct {
	suppression.Counts
	Bad      []LineError
	BadCount int // all bad lines; Bad holds the first MaxBadLines
}

// batch is how many entries Import hands to Merge at a time: one
// pipeline of about a hundred per shard.
const batch = suppression.MergeBatch

// Defaults fill what an imported line leaves empty.
type Defaults struct {
	Reason suppression.Reason // default DefaultReason
	Source string             // also the audit actor; default "import"
}

// DefaultReason is the reason of imported lines without one: an operator
// decided to suppress them.
const DefaultReason = suppression.Manual

// Import reads entries in format (FormatCSV or FormatJSONL) and adds them
// as Add does, in pipelines, streaming: memory does not grow with the
// input. Importing the same file twice changes nothing the second time.
// Bad lines are skipped and reported by number; everything else is
// imported. The error is for what stops the whole import: an unreadable
// input, a bad CSV header (a *LineError), Redis.
//
// A CSV file is either a plain list of addresses, one per line, or has a
// header line naming its columns, in any order, from CSVHeader plus
// "lane"; only the address column is required. Names are matched
// ignoring case, spaces, underscores and hyphens, and the address column
// may also be called "Email Address", "E-mail", "mail", "address" or
// "recipient", as other tools export it. Empty cells take defaults: d's
// reason and source, scope DefaultScope(reason), times now.
func Import(ctx context.Context, l *suppression.List, r io.Reader, format string, d Defaults) (ImportResult, error) {
	source := d.Source
	if source == "" {
		source = "import"
	}
	if err := suppression.CheckName(source); err != nil {
		return ImportResult{}, fmt.Errorf("import: source %w", err)
	}
	reason := DefaultReason
	if d.Reason != "" {
		var err error
		if reason, err = suppression.ParseReason(string(d.Reason)); err != nil {
			return ImportResult{}, fmt.Errorf("import: default %w", err)
		}
	}
	im := &importer{l: l, source: source, reason: reason, now: time.Now()}
	var err error
	switch format {
	case FormatCSV:
		err = im.csv(ctx, r)
	case FormatJSONL:
		err = im.jsonl(ctx, r)
	default:
		err = fmt.Errorf("unknown format %q (want %s or %s)", format, FormatCSV, FormatJSONL)
	}
	if err == nil {
		err = im.flush(ctx)
	}
	if err != nil {
		return im.res, fmt.Errorf("import: %w", err)
	}
	return im.res, nil
}

type importer struct {
	l      *suppression.List
	source string
	reason suppression.Reason
	now    time.Time
	res    ImportResult
	batch  []suppression.Entry
}

func (im *importer) bad(line int, err error) {
	im.res.BadCount++
	if len(im.res.Bad) < MaxBadLines {
		im.res.Bad = append(im.res.Bad, LineError{Line: line, Err: err.Error()})
	}
}

func (im *importer) add(ctx context.Context, line int, e suppression.Entry) error {
	if e.Reason == "" {
		e.Reason = im.reason
	}
	if e.Source == "" {
		e.Source = im.source
	}
	if err := e.Prepare(im.now); err != nil {
		im.bad(line, err)
		return nil
	}
	im.batch = append(im.batch, e)
	if len(im.batch) >= batch {
		return im.flush(ctx)
	}
	return nil
}

func (im *importer) flush(ctx context.Context) error {
	if len(im.batch) == 0 {
		return nil
	}
	c, err := im.l.Merge(ctx, im.batch, im.source)
	if err != nil {
		return err
	}
	im.res.Added += c.Added
	im.res.Updated += c.Updated
	im.res.Unchanged += c.Unchanged
	im.batch = im.batch[:0]
	return nil
}

// emailColumns are the names, as columnKey leaves them, that other tools
// give the address column ("Email Address", "email_address", "E-mail").
var emailColumns = []string{"email", "emailaddress", "mail", "address", "mailaddress", "recipient"}

// columnKey folds a column name for matching: case, surrounding space,
// Excel's BOM, and the spaces, underscores and hyphens inside are ignored.
func columnKey(h string) string {
	h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
	return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(h)
}

// columns maps a header line to column positions by CSV column name
// ("email", "reason"...). It says which line 1 cell is wrong and what was
// probably meant.
func columns(hdr []string) (map[string]int, error) {
	known := map[string]string{"lane": "lane"} // columnKey → column
	for _, c := range CSVHeader {
		known[columnKey(c)] = c
	}
	for _, c := range emailColumns {
		known[c] = "email"
	}
	names := append(slices.Clone(CSVHeader), "lane")
	col := map[string]int{}
	for i, h := range hdr {
		name, ok := known[columnKey(h)]
		if !ok {
			return nil, &LineError{Line: 1, Err: fmt.Sprintf("unknown column %q%s (known: %s; the address column may also be named Email Address, E-mail, mail)",
				strings.TrimSpace(h), suggest.Hint(columnKey(h), append(names, emailColumns...)), strings.Join(names, ","))}
		}
		if j, dup := col[name]; dup {
			return nil, &LineError{Line: 1, Err: fmt.Sprintf("columns %q and %q both name %s", strings.TrimSpace(hdr[j]), strings.TrimSpace(h), name)}
		}
		col[name] = i
	}
	if _, ok := col["email"]; !ok {
		return nil, &LineError{Line: 1, Err: fmt.Sprintf("no address column in header %q (name it email, or give a plain list of addresses, one per line)", strings.Join(hdr, ","))}
	}
	return col, nil
}

// csv reads a CSV file with a header line, or a plain list of addresses
// without one: a first line whose first cell holds an "@" is an address,
// since no column name does.
func (im *importer) csv(ctx context.Context, r io.Reader) error {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.ReuseRecord = true
	first, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &LineError{Line: pe.StartLine, Err: pe.Err.Error()}
	}
	if err != nil {
		return err
	}
	first[0] = strings.TrimPrefix(first[0], "\uFEFF") // Excel's BOM
	var col map[string]int
	if strings.Contains(first[0], "@") {
		if len(first) > 1 {
			return &LineError{Line: 1, Err: "a list without a header line has one address per line; add a header (e.g. email,reason) to import more columns"}
		}
		col = map[string]int{"email": 0}
		if err := im.row(ctx, 1, col, first); err != nil {
			return err
		}
	} else if col, err = columns(first); err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.As(err, &pe) {
			im.bad(pe.StartLine, pe.Err)
			continue
		}
		if err != nil {
			return err
		}
		line, _ := cr.FieldPos(0)
		if err := im.row(ctx, line, col, rec); err != nil {
			return err
		}
	}
}

// row imports one CSV record; a bad one is reported by its line.
func (im *importer) row(ctx context.Context, line int, col map[string]int, rec []string) error {
	e, err := entryFromCells(func(name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(rec[i])
		}
		return ""
	})
	if err != nil {
		im.bad(line, err)
		return nil
	}
	return im.add(ctx, line, e)
}

// entryFromCells builds an entry from named text cells (CSV columns).
func entryFromCells(cell func(string) string) (suppression.Entry, error) {
	e := suppression.Entry{
		Address: cell("email"), Reason: suppression.Reason(cell("reason")), Scope: suppression.Scope(cell("scope")),
		Enhanced: cell("enhanced_code"), Detail: cell("detail"), Campaign: cell("campaign"),
		Lane: cell("lane"), Source: cell("source"),
	}
	var err error
	if c := cell("code"); c != "" {
		if e.Code, err = strconv.Atoi(c); err != nil {
			return e, fmt.Errorf("code %q is not a number", c)
		}
	}
	if e.FirstSeen, err = parseTime("first_seen", cell("first_seen")); err != nil {
		return e, err
	}
	e.LastSeen, err = parseTime("last_seen", cell("last_seen"))
	return e, err
}

func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%s %q is not an RFC 3339 time (2006-01-02T15:04:05Z)", name, s)
	}
	return t, nil
}

func (im *importer) jsonl(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		line, long, err := readLine(br, maxJSONLine, buf[:0])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		buf = line
		if long {
			im.bad(n, fmt.Errorf("line longer than %d bytes", maxJSONLine))
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var je jsonEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&je); err != nil {
			im.bad(n, fmt.Errorf("bad JSON: %v", err))
			continue
		}
		if dec.More() {
			im.bad(n, errors.New("bad JSON: more than one value on the line"))
			continue
		}
		cells := map[string]string{
			"email": je.Email, "reason": je.Reason, "scope": je.Scope, "enhanced_code": je.Enhanced,
			"detail": je.Detail, "campaign": je.Campaign, "lane": je.Lane, "source": je.Source,
			"first_seen": je.FirstSeen, "last_seen": je.LastSeen,
		}
		e, err := entryFromCells(func(k string) string { return strings.TrimSpace(cells[k]) })
		if err != nil {
			im.bad(n, err)
			continue
		}
		e.Code = je.Code
		if err := im.add(ctx, n, e); err != nil {
			return err
		}
	}
}

// readLine reads one line without its end into buf. A line longer than max
// is consumed and reported as long instead of being held in memory.
func readLine(br *bufio.Reader, max int, buf []byte) ([]byte, bool, error) {
	long, got := false, false
	for {
		chunk, err := br.ReadSlice('\n')
		got = got || len(chunk) > 0
		if !long && len(buf)+len(chunk) <= max+2 {
			buf = append(buf, chunk...)
		} else {
			long, buf = true, buf[:0]
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && got {
			err = nil
		}
		return bytes.TrimRight(buf, "\r\n"), long, err
	}
}
