// Package streams is sluice's durable queue in Redis: one stream per lane
// read through a consumer group, a delayed set per lane for retries, and a
// settle step that records a job's outcome and acknowledges it atomically.
//
// Delivery is at-least-once: a job leaves its consumer's pending list only
// in the same Lua script that records its outcome (or its next attempt), so
// a crash can re-send what was in flight but never lose it. Jobs held by a
// dead consumer are taken over with XAUTOCLAIM.
package streams

import (
	"encoding/json"
	"fmt"
)

// Lane separates transactional mail from campaigns end to end.
type Lane string

const (
	Transactional Lane = "transactional"
	Marketing     Lane = "marketing"
)

// Lanes in reading priority order: transactional first.
var Lanes = []Lane{Transactional, Marketing}

// ParseLane validates a lane name.
func ParseLane(s string) (Lane, error) {
	switch Lane(s) {
	case Transactional, Marketing:
		return Lane(s), nil
	case "":
		return Marketing, nil
	}
	return "", fmt.Errorf("unknown lane %q (want transactional or marketing)", s)
}

// Job is one message to one recipient.
type Job struct {
	ID       string            `json:"id"`           // unique: "campaign/line" or a transactional id
	Campaign string            `json:"c,omitempty"`  // campaign id; empty for API/submission jobs
	To       string            `json:"to"`           // recipient address
	Fields   map[string]string `json:"f,omitempty"`  // merge fields
	Lane     Lane              `json:"l"`            // stream the job belongs to
	Line     int               `json:"ln,omitempty"` // recipients-file line, for reports
	Attempts int               `json:"n,omitempty"`  // delivery attempts made so far
	First    int64             `json:"t0"`           // unix ms of enqueue; max age counts from here
	// HasMessage: the message is stored ready-made under MessageKey(ID)
	// (transactional mail); otherwise it is rendered from the campaign.
	HasMessage bool   `json:"m,omitempty"`
	From       string `json:"from,omitempty"` // envelope sender of a ready-made message
	// History are the attempts made so far (Record.NextEarlier), carried
	// to the record of the next attempt.
	History []Attempt `json:"h,omitempty"`
}

func (j *Job) encode() (string, error) {
	if b, ok := appendJob(make([]byte, 0, 192), j); ok {
		return string(b), nil
	}
	b, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	return string(b), nil
}

// decodeJob reads a job: by readJob's fast path, or by encoding/json when
// the fast path declines (see jobjson.go).
func decodeJob(s string) (Job, error) {
	if j, ok := readJob(s); ok {
		return j, nil
	}
	var j Job
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return j, fmt.Errorf("decode job: %w", err)
	}
	return j, nil
}

// Delivery is a job read from a stream, held in this consumer's pending
// list until settled.
type Delivery struct {
	Job
	StreamID string // the entry's id in the stream holding it
	Raw      string // the encoded job as stored
	Stream   string // the stream holding it: its lane's, or its line's
	Key      string // the throttle key of its line; empty in a lane
	// Pack is how many jobs its entry holds when that entry is a pack
	// (PackField) of more than one, 0 otherwise: a launch's in a lane, a
	// route's in a campaign's line (LinePack). A pack is let go of only
	// as a whole: in a lane, every job of it routed, or put back in the
	// lane as an entry of its own, in one step (Queue.Route); in a line,
	// every job of it settled, or put back in the line as an entry of its
	// own, in one step (SettleRun, Settlement.Back), or the pack put back
	// whole (PutBack).
	Pack int
}
