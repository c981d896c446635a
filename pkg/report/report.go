// Package report reads a campaign's per-recipient records back out of
// Redis: one row per recipient with its latest outcome, streamed with HSCAN
// a batch at a time so a campaign of millions never sits in memory. It
// writes those rows as CSV or JSON Lines and sums them up for status views.
package report

import (
	"context"
	"fmt"
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
		Reply: rec.Reply, Reason: rec.Reason, Attempts: rec.Attempts, Host: rec.Host, Line: rec.Line}
	if rec.At > 0 {
		row.Last = time.UnixMilli(rec.At).UTC()
	}
	return row
}

// DefaultBatch is the HSCAN COUNT hint: big enough to keep round trips
// few, small enough that one reply stays well under a megabyte.
const DefaultBatch = 1000

// Scan calls fn for every record in the hash at key (a campaign's
// records, store.Tally(id).Records), batch by batch. Like every Redis SCAN
// it sees each recipient present for the whole scan at least once; one
// could appear twice only if the hash were resized meanwhile (while a
// launch is still adding recipients).
func Scan(ctx context.Context, rdb redis.UniversalClient, key string, batch int, fn func(Row) error) error {
	if batch <= 0 {
		batch = DefaultBatch
	}
	var cursor uint64
	for {
		kv, next, err := rdb.HScan(ctx, key, cursor, "", int64(batch)).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			rec, err := streams.DecodeRecord(kv[i+1])
			if err != nil {
				return fmt.Errorf("record of %s in %s: %w", kv[i], key, err)
			}
			if err := fn(FromRecord(kv[i], rec)); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
