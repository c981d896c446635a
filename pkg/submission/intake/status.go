package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/streams"
)

// Status is a transactional job's state and its last delivery attempt, as
// GET /v1/messages/{id} and campaignctl send --wait report them.
type Status struct {
	ID       string   `json:"id"`
	State    string   `json:"state"` // queued, deferred, delivered, bounced, failed
	Final    bool     `json:"final"` // the state will not change any more
	Attempts int      `json:"attempts"`
	Last     *Attempt `json:"last,omitempty"` // nil before the first attempt
}

// Attempt is the outcome of the last delivery attempt.
type Attempt struct {
	Code     int       `json:"code,omitempty"`     // SMTP reply code; 0 when none (DNS, connect)
	Enhanced string    `json:"enhanced,omitempty"` // RFC 3463, e.g. "2.0.0"
	Text     string    `json:"text,omitempty"`     // reply text or local error
	Reason   string    `json:"reason,omitempty"`   // sluice's own tag, e.g. "expired"
	Host     string    `json:"host,omitempty"`     // the host that answered
	At       time.Time `json:"at"`
}

// ErrNotFound means no job has the ID.
var ErrNotFound = errors.New("no such message")

// Lookup reads a job's status from ks's transactional tally.
func Lookup(ctx context.Context, rdb redis.UniversalClient, ks keyspace.Space, id string) (Status, error) {
	if _, ok := idDay(id); !ok {
		return Status{}, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	rec, err := streams.ReadRecord(ctx, rdb, Tally(ks, id), id)
	if errors.Is(err, streams.ErrNoRecord) {
		return Status{}, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Status{}, fmt.Errorf("message %s: %w", id, err)
	}
	st := Status{ID: id, State: rec.Status, Final: outcome.IsFinal(rec.Status), Attempts: rec.Attempts}
	if rec.At != 0 {
		st.Last = &Attempt{Code: rec.Code, Enhanced: rec.Enhanced, Text: rec.Reply, Reason: rec.Reason,
			Host: rec.Host, At: time.UnixMilli(rec.At).UTC()}
	}
	return st, nil
}
