package suppression

import (
	"context"
	"fmt"
)

// Size is the number of entries (addresses and domains) on the list.
func (l *List) Size(ctx context.Context) (int64, error) {
	n, err := l.rdb.HLen(ctx, l.hash).Result()
	if err != nil {
		return 0, fmt.Errorf("suppression size: %w", err)
	}
	return n, nil
}
