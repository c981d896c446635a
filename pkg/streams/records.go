package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Redis is the client q writes through (for a caller's writes that go
// with its jobs but not in their step, such as the Message-ID index).
func (q *Queue) Redis() redis.UniversalClient { return q.rdb }

// ErrNoRecord means a records hash has no record under the field asked for.
var ErrNoRecord = errors.New("no record")

// ReadRecord returns the record stored under field (a campaign's
// lower-cased recipient address, a transactional job's id) in t's records
// hash. A missing record is ErrNoRecord.
func ReadRecord(ctx context.Context, rdb redis.UniversalClient, t Tally, field string) (Record, error) {
	v, err := rdb.HGet(ctx, t.For(field).Records, field).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, fmt.Errorf("record %s: %w", field, ErrNoRecord)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read record %s: %w", field, err)
	}
	rec, err := DecodeRecord(v)
	if err != nil {
		return Record{}, fmt.Errorf("decode record %s: %w", field, err)
	}
	return rec, nil
}

// DefaultScanBatch is ScanRecords' HSCAN COUNT hint: big enough to keep
// round trips few, small enough that one reply stays well under a
// megabyte.
const DefaultScanBatch = 1000

// ScanRecords calls fn for every record in t's records hashes (every
// shard's, one after another) with its field, batch by batch (batch <= 0:
// DefaultScanBatch). Like every Redis
// SCAN it sees each record present for the whole scan at least once; one
// could appear twice only if the hash were resized meanwhile (while a
// launch is still adding recipients). An error from fn stops the scan and
// is returned as is.
func ScanRecords(ctx context.Context, rdb redis.UniversalClient, t Tally, batch int, fn func(field string, rec Record) error) error {
	if batch <= 0 {
		batch = DefaultScanBatch
	}
	for _, st := range t.all() {
		if err := scanRecords(ctx, rdb, st.Records, batch, fn); err != nil {
			return err
		}
	}
	return nil
}

func scanRecords(ctx context.Context, rdb redis.UniversalClient, key string, batch int, fn func(field string, rec Record) error) error {
	var cursor uint64
	for {
		kv, next, err := rdb.HScan(ctx, key, cursor, "", int64(batch)).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			rec, err := DecodeRecord(kv[i+1])
			if err != nil {
				return fmt.Errorf("record %s in %s: %w", kv[i], key, err)
			}
			if err := fn(kv[i], rec); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
