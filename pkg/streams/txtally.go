package streams

import (
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// RecordRetention is how long the records of mail without a campaign (API,
// SMTP submission) are kept after their day of enqueue: long enough for any
// retry schedule and for support questions, short enough that a sender of
// millions of receipts a day does not fill Redis. Campaign records live
// until the campaign is deleted.
const RecordRetention = 30 * 24 * time.Hour

// DayFormat names a day's records hash and starts transactional job ids.
const DayFormat = "20060102"

// TransactionalTally is where a job without a campaign, enqueued at t, is
// counted: per shard, counters shared by all such jobs, and records in
// one hash per UTC day that expires RecordRetention after that day ends.
func TransactionalTally(ks keyspace.Space, t time.Time) Tally {
	day := t.UTC().Truncate(24 * time.Hour)
	expire := day.Add(24 * time.Hour).Add(RecordRetention)
	return Tally{RecordsExpireAt: expire, Shards: func(n int) Tally {
		return Tally{
			Counters:        ks.In(n, "tx", "counters"),
			Records:         ks.In(n, "tx", "rec", day.Format(DayFormat)),
			RecordsExpireAt: expire,
		}
	}}
}
