package suppression

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// Filter selects entries; the zero Filter selects all.
type Filter struct {
	Reason Reason    // only this reason, when set
	Since  time.Time // only entries active since: LastSeen >= Since
}

func (f Filter) check() error {
	if f.Reason != "" {
		if _, err := ParseReason(string(f.Reason)); err != nil {
			return err
		}
	}
	return nil
}

func (f Filter) match(e Entry) bool {
	return (f.Reason == "" || e.Reason == f.Reason) && (f.Since.IsZero() || !e.LastSeen.Before(f.Since))
}

// scanPage is the COUNT hint of each HSCAN.
const scanPage = 1000

// Scan calls fn for every entry f selects, streaming the list with HSCAN,
// shard after shard, so memory stays flat however long it is. Order is
// the shards' and Redis's hash order;
// bulk.Export sorts. As with any SCAN, an entry added or removed meanwhile may
// or may not be seen, and one may be seen twice when the hash shrinks
// during the scan. An error from fn stops the scan and is returned as is.
func (l *List) Scan(ctx context.Context, f Filter, fn func(Entry) error) error {
	return l.ScanStored(ctx, f, func(e Entry, _ string) error { return fn(e) })
}

// ScanStored is Scan that also passes each entry's stored encoding, a
// compact string (about a third of the entry as JSON) that Decode turns
// back into the entry: bulk export sorts millions of them in memory.
func (l *List) ScanStored(ctx context.Context, f Filter, fn func(e Entry, stored string) error) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("suppression: scan: %w", err)
	}
	for n := range keyspace.Shards {
		if err := l.scanShard(ctx, n, f, fn); err != nil {
			return err
		}
	}
	return nil
}

func (l *List) scanShard(ctx context.Context, n int, f Filter, fn func(e Entry, stored string) error) error {
	var cursor uint64
	for {
		kv, next, err := l.rdb.HScan(ctx, l.entriesKey(n), cursor, "", scanPage).Result()
		if err != nil {
			return fmt.Errorf("suppression: scan: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			e, err := Decode(kv[i], kv[i+1])
			if err != nil {
				return err
			}
			if !f.match(e) {
				continue
			}
			if err := fn(e, kv[i+1]); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
