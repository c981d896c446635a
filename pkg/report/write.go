package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"
)

// Columns is the CSV header, a public contract for spreadsheets and
// scripts: add columns at the end only.
var Columns = []string{"email", "outcome", "code", "enhanced_code", "reply", "attempts", "last_attempt", "provider", "line", "source"}

// Writer writes rows in one format.
type Writer interface {
	Write(Row) error
	// Flush writes out what is buffered and reports any write error.
	Flush() error
}

// NewCSV writes the header and then one CSV record per row. reply is the
// server's reply or, when no server answered, sluice's reason (suppressed,
// cancelled, expired); provider is Row.Provider.
func NewCSV(w io.Writer) (Writer, error) {
	c := &csvWriter{w: csv.NewWriter(w)}
	return c, c.w.Write(Columns)
}

type csvWriter struct {
	w   *csv.Writer
	rec [10]string
}

func (c *csvWriter) Write(r Row) error {
	reply := r.Reply
	if reply == "" {
		reply = r.Reason
	}
	code, last, line := "", "", ""
	if r.Code != 0 {
		code = strconv.Itoa(r.Code)
	}
	if !r.Last.IsZero() {
		last = r.Last.Format(time.RFC3339)
	}
	if r.Line != 0 {
		line = strconv.Itoa(r.Line)
	}
	c.rec = [10]string{r.Email, r.Outcome, code, r.Enhanced, reply, strconv.Itoa(r.Attempts), last, r.Provider(), line, r.Source}
	return c.w.Write(c.rec[:])
}

func (c *csvWriter) Flush() error {
	c.w.Flush()
	return c.w.Error()
}

// NewJSONL writes one JSON object per row: Row's JSON keys and provider,
// the same value as the CSV's column of that name.
func NewJSONL(w io.Writer) Writer {
	bw := bufio.NewWriter(w)
	return &jsonlWriter{bw: bw, enc: json.NewEncoder(bw)}
}

type jsonlWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

// jsonRow is a row as JSON Lines writes it.
type jsonRow struct {
	Row
	Provider string `json:"provider,omitempty"`
}

func (j *jsonlWriter) Write(r Row) error { return j.enc.Encode(jsonRow{r, r.Provider()}) }
func (j *jsonlWriter) Flush() error      { return j.bw.Flush() }
