// Package bulk moves a whole suppression list in and out of files: import
// and export in CSV or JSONL, streaming, in bounded memory. Only tools
// (campaignctl) link it; the engine needs none of it.
package bulk

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sluice-mta/sluice/pkg/suppression"
)

// Export and import formats.
const (
	FormatCSV   = "csv"   // header CSVHeader, RFC 4180 quoting, RFC 3339 UTC times
	FormatJSONL = "jsonl" // one JSON object per line, keys as the CSV columns plus "lane"
)

// CSVHeader is the exact first line of a CSV export. The entry's lane is
// not a column (the format is fixed for other tools); FormatJSONL keeps it.
var CSVHeader = []string{"email", "reason", "scope", "code", "enhanced_code", "detail", "campaign", "first_seen", "last_seen", "source"}

// sortMemory is how many bytes of entries Export sorts in memory before
// spilling a run to disk.
const sortMemory = 16 << 20

// Option tunes an Export.
type Option func(*exportConfig)

type exportConfig struct {
	tempDir string
	sortMem int // bytes sorted in memory; tests lower it
}

// WithTempDir sets where Export keeps its sorted runs (default os.TempDir).
func WithTempDir(dir string) Option { return func(c *exportConfig) { c.tempDir = dir } }

func withSortMemory(n int) Option { return func(c *exportConfig) { c.sortMem = n } }

// Export writes the entries f selects to w in format, sorted by address,
// and returns how many it wrote. Memory stays bounded however long the
// list is: entries are streamed out of Redis and sorted in runs on disk
// (WithTempDir). The same content always exports to the same bytes, so
// exports can be diffed and an export → remove → import round trip is
// exact (CSV drops only the lane, see CSVHeader).
func Export(ctx context.Context, l *suppression.List, w io.Writer, format string, f suppression.Filter, opts ...Option) (int, error) {
	cfg := exportConfig{sortMem: sortMemory}
	for _, o := range opts {
		o(&cfg)
	}
	enc, err := newEncoder(w, format)
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	s := newRunSorter(cfg.tempDir, cfg.sortMem)
	defer s.close()
	if err := l.ScanStored(ctx, f, func(e suppression.Entry, v string) error { return s.add(e.Address, v) }); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	n := 0
	err = s.each(func(k, v string) error {
		e, err := suppression.Decode(k, v)
		if err != nil {
			return err
		}
		n++
		return enc.write(e)
	})
	if err == nil {
		err = enc.flush()
	}
	if err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	return n, nil
}

type encoder interface {
	write(suppression.Entry) error
	flush() error
}

func newEncoder(w io.Writer, format string) (encoder, error) {
	switch format {
	case FormatCSV:
		c := csv.NewWriter(w)
		if err := c.Write(CSVHeader); err != nil {
			return nil, err
		}
		return &csvEncoder{w: c, rec: make([]string, len(CSVHeader))}, nil
	case FormatJSONL:
		b := bufio.NewWriterSize(w, 64<<10)
		j := json.NewEncoder(b)
		j.SetEscapeHTML(false) // keep "<" and "&" in reply text readable
		return &jsonlEncoder{b: b, j: j}, nil
	}
	return nil, fmt.Errorf("unknown format %q (want %s or %s)", format, FormatCSV, FormatJSONL)
}

type csvEncoder struct {
	w   *csv.Writer
	rec []string
}

func (c *csvEncoder) write(e suppression.Entry) error {
	code := ""
	if e.Code != 0 {
		code = strconv.Itoa(e.Code)
	}
	c.rec[0], c.rec[1], c.rec[2], c.rec[3], c.rec[4] = e.Address, string(e.Reason), string(e.Scope), code, e.Enhanced
	c.rec[5], c.rec[6], c.rec[7], c.rec[8], c.rec[9] = e.Detail, e.Campaign, fmtTime(e.FirstSeen), fmtTime(e.LastSeen), e.Source
	return c.w.Write(c.rec)
}

func (c *csvEncoder) flush() error { c.w.Flush(); return c.w.Error() }

// jsonEntry is the JSONL form of an entry (and of a CLI --json line).
type jsonEntry struct {
	Email     string `json:"email"`
	Reason    string `json:"reason"`
	Scope     string `json:"scope"`
	Code      int    `json:"code,omitempty"`
	Enhanced  string `json:"enhanced_code,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	Lane      string `json:"lane,omitempty"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
	Source    string `json:"source,omitempty"`
}

type jsonlEncoder struct {
	b *bufio.Writer
	j *json.Encoder
}

func (j *jsonlEncoder) write(e suppression.Entry) error {
	return j.j.Encode(jsonEntry{
		Email: e.Address, Reason: string(e.Reason), Scope: string(e.Scope), Code: e.Code, Enhanced: e.Enhanced,
		Detail: e.Detail, Campaign: e.Campaign, Lane: e.Lane, FirstSeen: fmtTime(e.FirstSeen),
		LastSeen: fmtTime(e.LastSeen), Source: e.Source,
	})
}

func (j *jsonlEncoder) flush() error { return j.b.Flush() }

// NewEncoder returns a streaming writer of entries in format, for callers
// that list entries themselves (the CLI). Call Flush at the end.
func NewEncoder(w io.Writer, format string) (*Encoder, error) {
	e, err := newEncoder(w, format)
	if err != nil {
		return nil, err
	}
	return &Encoder{e}, nil
}

// Encoder writes entries as Export does.
type Encoder struct{ e encoder }

// Write writes one entry.
func (e *Encoder) Write(en suppression.Entry) error { return e.e.write(en) }

// Flush writes out buffered data.
func (e *Encoder) Flush() error { return e.e.flush() }

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
