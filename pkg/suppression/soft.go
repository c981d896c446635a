package suppression

import (
	"context"
	"fmt"
	"time"
)

// SoftLimit says when repeated soft bounces (a mailbox full: 4.2.2, 5.2.2)
// turn into a suppression: one full day is normal, weeks of it mean an
// abandoned mailbox, and mailbox providers count mail sent to abandoned
// mailboxes against the sender.
type SoftLimit struct {
	Count int           // soft bounces needed, at least 1
	Span  time.Duration // time between the first and the latest of them, at least
	// Idle forgets a streak after this long without a soft bounce, so
	// occasional full mailboxes months apart never add up. Zero means
	// 2×Span, and at least a day.
	Idle time.Duration
}

func (s SoftLimit) idle() time.Duration {
	if s.Idle > 0 {
		return s.Idle
	}
	return max(2*s.Span, 24*time.Hour)
}

// NoteSoftBounce counts a soft bounce of addr at now. When the streak
// reaches limit.Count bounces spread over at least limit.Span, addr is
// suppressed with reason soft_bounce_limit (scope e.Scope, else global),
// FirstSeen the streak's first bounce, and e's reply details; the counter
// is then cleared. Only the few addresses currently soft-bouncing hold a
// counter key; it expires after limit's idle time.
func (l *List) NoteSoftBounce(ctx context.Context, addr string, e Entry, now time.Time, limit SoftLimit) (bool, error) {
	if limit.Count < 1 || limit.Span < 0 {
		return false, fmt.Errorf("suppression: soft bounce: bad limit %+v (count >= 1, span >= 0)", limit)
	}
	f, err := Normalize(addr)
	if err != nil {
		return false, fmt.Errorf("suppression: soft bounce: %w", err)
	}
	if f[0] == '@' {
		return false, fmt.Errorf("suppression: soft bounce: %s: need a mailbox, not a domain", f)
	}
	key := l.softKey(f)
	res, err := softScript.Run(ctx, l.rdb, []string{key}, now.UnixMilli(), limit.idle().Milliseconds()).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("suppression: soft bounce %s: %w", f, err)
	}
	n, first := res[0], time.UnixMilli(res[1])
	if n < int64(limit.Count) || now.Sub(first) < limit.Span {
		return false, nil
	}
	e.Address, e.Reason = f, SoftBounceLimit
	if e.Scope == "" {
		e.Scope = Global
	}
	if e.Source == "" {
		e.Source = "engine"
	}
	e.FirstSeen, e.LastSeen = first, now
	e.Detail = fmt.Sprintf("%d soft bounces since %s; last: %s", n, first.UTC().Format(time.RFC3339), e.Detail)
	if err := e.Prepare(now); err != nil {
		return false, fmt.Errorf("suppression: soft bounce: %w", err)
	}
	if _, err := l.upsert(ctx, []Entry{e}, ""); err != nil {
		return false, fmt.Errorf("suppression: soft bounce %s: %w", f, err)
	}
	if err := l.rdb.Del(ctx, key).Err(); err != nil {
		return true, fmt.Errorf("suppression: soft bounce %s: clear counter: %w", f, err)
	}
	return true, nil
}

// ClearSoftBounces forgets addr's soft-bounce streak, e.g. after a delivery
// succeeded: the mailbox has room again.
func (l *List) ClearSoftBounces(ctx context.Context, addr string) error {
	f, err := Normalize(addr)
	if err != nil {
		return fmt.Errorf("suppression: clear soft bounces: %w", err)
	}
	if err := l.rdb.Del(ctx, l.softKey(f)).Err(); err != nil {
		return fmt.Errorf("suppression: clear soft bounces %s: %w", f, err)
	}
	return nil
}
