// Package report reads a campaign's per-recipient records back out of
// Redis: one row per recipient with its latest outcome, streamed with HSCAN
// a batch at a time so a campaign of millions never sits in memory. It
// writes those rows as CSV or JSON Lines and sums them up for status views.
package report

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/streams"
)

// Row is one recipient's latest state.
type Row struct {
	Email    string    `json:"email"`
	Outcome  string    `json:"outcome"` // queued, deferred, delivered, bounced, failed, suppressed, cancelled
	Code     int       `json:"code,omitempty"`
	Enhanced string    `json:"enhanced_code,omitempty"`
	Reply    string    `json:"reply,omitempty"`
	Reason   string    `json:"reason,omitempty"` // sluice's own reason: suppressed, cancelled, expired...
	Attempts int       `json:"attempts"`
	Last     time.Time `json:"last_attempt,omitzero"`
	// Host is the MX host that answered last. JSON Lines reports carry
	// Provider() as "provider" instead, like the CSV's column.
	Host string `json:"-"`
	Line int    `json:"line,omitempty"` // in the recipients file
	// Source is the egress source the last attempt left from (engine
	// config sources[].name); "" before any attempt.
	Source string `json:"source,omitempty"`
	// History is every attempt kept (the last streams.HistoryLimit),
	// oldest first; JSON only.
	History []Attempt `json:"history,omitempty"`
}

// Attempt is one delivery attempt of a recipient.
type Attempt struct {
	At       time.Time `json:"at"`
	Outcome  string    `json:"outcome,omitempty"`
	MX       string    `json:"mx,omitempty"`
	Code     int       `json:"code,omitempty"`
	Enhanced string    `json:"enhanced_code,omitempty"`
	Reply    string    `json:"reply,omitempty"`
	Source   string    `json:"source,omitempty"` // the egress source it left from
}

// Domain is the recipient's domain.
func (r Row) Domain() string {
	if i := strings.LastIndexByte(r.Email, '@'); i >= 0 {
		return r.Email[i+1:]
	}
	return ""
}

// Provider is who handled the recipient: the MX host that answered, or the
// recipient's domain when no host was ever reached (queued, suppressed,
// cancelled, DNS failures).
func (r Row) Provider() string {
	if r.Host != "" {
		return r.Host
	}
	return r.Domain()
}

// FromRecord builds the row for the record stored under email.
func FromRecord(email string, rec streams.Record) Row {
	row := Row{Email: email, Outcome: rec.Status, Code: rec.Code, Enhanced: rec.Enhanced,
		Reply: rec.Reply, Reason: rec.Reason, Attempts: rec.Attempts, Host: rec.Host, Line: rec.Line, Source: rec.Src}
	if rec.At > 0 {
		row.Last = time.UnixMilli(rec.At).UTC()
	}
	for _, a := range rec.History() {
		row.History = append(row.History, Attempt{At: time.UnixMilli(a.At).UTC(), Outcome: a.Status, MX: a.Host,
			Code: a.Code, Enhanced: a.Enhanced, Reply: a.Reply, Source: a.Src})
	}
	return row
}

// DefaultBatch is the HSCAN COUNT hint (streams.DefaultScanBatch).
const DefaultBatch = streams.DefaultScanBatch

// Scan calls fn for the row of every record in tally (a campaign's,
// store.Tally(id)), batch by batch, as streams.ScanRecords reads them.
func Scan(ctx context.Context, rdb redis.UniversalClient, tally streams.Tally, batch int, fn func(Row) error) error {
	return streams.ScanRecords(ctx, rdb, tally, batch, func(email string, rec streams.Record) error {
		return fn(FromRecord(email, rec))
	})
}
