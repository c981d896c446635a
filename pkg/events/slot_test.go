package events

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/testutil/slotcheck"
)

// TestOneSlotPerCommand: read as on a Redis Cluster (stream by stream),
// the log sends no command whose keys span slots.
func TestOneSlotPerCommand(t *testing.T) {
	ctx := context.Background()
	l, rdb := newLog(t)
	l.perSource = true
	h := slotcheck.Attach(t, rdb)
	for _, r := range []string{"a@x.test", "b@x.test", "c@y.test"} {
		if _, err := l.Append(ctx, Event{Type: Unsubscribed, Recipient: r}); err != nil {
			t.Fatal(err)
		}
	}
	evs, c, err := l.ReadFrom(ctx, Cursor{}, 10, 300*time.Millisecond)
	if err != nil || len(evs) != 3 {
		t.Fatalf("read %v %v", evs, err)
	}
	if _, _, err := l.ReadFrom(ctx, c, 10, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Last(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Behind(ctx, evs[0].ID, 10); err != nil || n != 2 {
		t.Fatalf("behind %d %v", n, err)
	}
	if _, err := l.Trim(ctx, time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if h.Checked() < 3*sources {
		t.Fatalf("only %d commands checked", h.Checked())
	}
}
