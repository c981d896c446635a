package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pkg/jsonenc"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/outcome"
)

// Tally names where jobs' outcomes are counted: a hash of counters (total,
// queued, deferred, delivered, bounced, failed, suppressed, duplicates) and a
// hash holding one record per recipient (campaigns) or per job (API mail).
//
// A campaign's or the transactional mail's tally is sharded (Shards set):
// each shard has its own two hashes, and a record lives in the shard of
// its field (keyspace.ShardOf), which is its job's shard (Job.Shard), so a
// job is settled in one hash slot. Without Shards, Counters and Records
// are the hashes themselves (one shard's, as In returns them).
type Tally struct {
	Counters string
	Records  string
	// Shards, when set, names shard n's hashes.
	Shards func(n int) Tally
	// RecordsExpireAt, when set, makes the records hash expire then (see
	// TransactionalTally); enqueueing a message sets it.
	RecordsExpireAt time.Time
	// CheckpointField, when set, is the field of Counters where a
	// Batch's Checkpoint is recorded (the counters hash's owner names it).
	CheckpointField string
}

// In is shard n's tally (t itself when t is not sharded).
func (t Tally) In(n int) Tally {
	if t.Shards == nil {
		return t
	}
	return t.Shards(n)
}

// For is the tally holding the record under field.
func (t Tally) For(field string) Tally { return t.In(keyspace.ShardOf(field)) }

// all is every shard's tally (t alone when it is not sharded).
func (t Tally) all() []Tally {
	if t.Shards == nil {
		return []Tally{t}
	}
	out := make([]Tally, keyspace.Shards)
	for n := range out {
		out[n] = t.Shards(n)
	}
	return out
}

// Record is what is kept per recipient: its latest state and last reply.
// The status comes first in the encoding; the settle script reads it with a
// pattern instead of decoding JSON.
type Record struct {
	Status   string `json:"s"` // queued, deferred, delivered, bounced, failed, suppressed
	Code     int    `json:"c,omitempty"`
	Enhanced string `json:"e,omitempty"`
	Reply    string `json:"r,omitempty"`
	Reason   string `json:"why,omitempty"`
	Host     string `json:"h,omitempty"`
	Attempts int    `json:"n,omitempty"`
	At       int64  `json:"at,omitempty"` // unix ms of the last attempt
	Line     int    `json:"ln,omitempty"`
	JobID    string `json:"j,omitempty"`
	// Src names the egress source the last attempt left from (config
	// sources[].name; "" before any attempt).
	Src string `json:"src,omitempty"`
	// Prov is the throttle key of the last attempt's line (its warm-up
	// provider): with Src, whose reputation a later complaint or bounce
	// counts against.
	Prov string `json:"pv,omitempty"`
	// Earlier are the attempts before the last one, oldest first (at
	// most HistoryLimit-1; see History).
	Earlier []Attempt `json:"hist,omitempty"`
}

// Encode returns the stored form.
func (r Record) Encode() string {
	if len(r.Earlier) == 0 {
		return string(r.appendJSON(make([]byte, 0, 192)))
	}
	b, _ := json.Marshal(r) // a struct of strings and ints cannot fail
	return string(b)
}

// appendJSON appends json.Marshal's encoding of r without Earlier: a
// record is written for every settled job, and reflection showed in
// the profile.
func (r Record) appendJSON(b []byte) []byte {
	b = jsonenc.AppendField(append(b, '{'), "s", r.Status, true)
	if r.Code != 0 {
		b = jsonenc.AppendInt(b, "c", int64(r.Code), false)
	}
	b = jsonenc.AppendNonEmpty(b, "e", r.Enhanced, "r", r.Reply, "why", r.Reason, "h", r.Host)
	for _, f := range [...]struct {
		k string
		v int64
	}{{"n", int64(r.Attempts)}, {"at", r.At}, {"ln", int64(r.Line)}} {
		if f.v != 0 {
			b = jsonenc.AppendInt(b, f.k, f.v, false)
		}
	}
	b = jsonenc.AppendNonEmpty(b, "j", r.JobID, "src", r.Src, "pv", r.Prov)
	return append(b, '}')
}

// DecodeRecord parses a stored record.
func DecodeRecord(s string) (Record, error) {
	var r Record
	err := json.Unmarshal([]byte(s), &r)
	return r, err
}

// luaFinal starts every script that asks whether a record is final: a
// Lua set of outcome.Finals, so Go and Lua share the one list.
var luaFinal = func() string {
	var b strings.Builder
	b.WriteString("local final = {")
	for i, s := range outcome.Finals {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%q] = true", s)
	}
	b.WriteString("}\n")
	return b.String()
}()

// Settled says what Settle did.
type Settled int

const (
	// NotHeld: the job was no longer in this consumer's pending list (another
	// engine reclaimed it); nothing was recorded.
	NotHeld Settled = 0
	// Recorded: the outcome was recorded and the job acknowledged.
	Recorded Settled = 1
	// AlreadyFinal: the recipient already had a final outcome; the job was
	// acknowledged and nothing was counted twice.
	AlreadyFinal Settled = 2
	// WentBack: the job went back in its line as an entry of its own
	// (Settlement.Back).
	WentBack Settled = 3
)

// Settle records d's outcome in t and acknowledges it, atomically. A
// non-final rec (status "deferred") puts the job, with its attempt count
// as given in next, into the lane's delayed set due at retryAt: the next
// attempt is durable before the current one is acknowledged. (SettleRun
// for a run of one.)
func (q *Queue) Settle(ctx context.Context, d Delivery, t Tally, rec Record, next *Job, retryAt time.Time) (Settled, error) {
	res, err := q.SettleRun(ctx, []Settlement{{D: d, Tally: t, Rec: rec, Next: next, RetryAt: retryAt}})
	if err != nil {
		return 0, err
	}
	return res[0], nil
}

// RecordField is the key of the job's record in its tally: for campaign
// jobs the lower-cased recipient address, so a campaign never holds an
// address twice (RFC 5321 §2.4 lets local parts be case-sensitive, but no
// mailbox provider treats them so, and a double send costs more than a
// merged pair); the job id otherwise.
func (j *Job) RecordField() string {
	if j.Campaign != "" {
		return strings.ToLower(j.To)
	}
	return j.ID
}

// Shard is the job's shard: its record field's (the lower-cased address
// of a campaign job, a transactional job's id, whose stored message is
// kept there too).
func (j *Job) Shard() int { return keyspace.ShardOf(j.RecordField()) }
