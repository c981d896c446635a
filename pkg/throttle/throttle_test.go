package throttle

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
)

func TestAdmitBoundsConcurrencyPerKey(t *testing.T) {
	l := New(config.Throttle{Default: config.Limits{StartRate: 1e6, Burst: 100, MaxConnections: 3}})
	var held []*Permit
	for i := 0; i < 3; i++ {
		p, _, _ := l.Admit(context.Background(), "k", "marketing")
		if p == nil {
			t.Fatalf("permit %d refused", i)
		}
		held = append(held, p)
	}
	if p, at, _ := l.Admit(context.Background(), "k", "marketing"); p != nil || at.IsZero() {
		t.Fatal("a 4th concurrent permit was granted")
	}
	if p, _, _ := l.Admit(context.Background(), "other", "marketing"); p == nil {
		t.Fatal("a full key blocked another key")
	}
	held[0].Done(deliver.Outcome{Status: deliver.Delivered})
	held[0].Done(deliver.Outcome{Status: deliver.Delivered}) // idempotent
	if p, _, _ := l.Admit(context.Background(), "k", "marketing"); p == nil {
		t.Fatal("no permit after one was done")
	}
	if p, _, _ := l.Admit(context.Background(), "k", "marketing"); p != nil {
		t.Fatal("double Done freed two slots")
	}
}

func TestAdmitPacesRateWithoutBlocking(t *testing.T) {
	l := New(config.Throttle{Default: config.Limits{StartRate: 10, Burst: 2, MaxConnections: 100}})
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	granted := 0
	var retry time.Time
	for i := 0; i < 5; i++ {
		p, at, _ := l.Admit(context.Background(), "k", "marketing")
		if p == nil {
			retry = at
			continue
		}
		granted++
		p.Done(deliver.Outcome{})
	}
	if granted != 2 {
		t.Fatalf("granted %d at one instant, want the burst of 2", granted)
	}
	if d := retry.Sub(now); d < 90*time.Millisecond || d > 110*time.Millisecond {
		t.Fatalf("retry in %v, want ~100ms at 10/s", d)
	}
	now = now.Add(100 * time.Millisecond)
	if p, _, _ := l.Admit(context.Background(), "k", "marketing"); p == nil {
		t.Fatal("no permit after the token refilled")
	}
}

func TestProviderOverridesDefault(t *testing.T) {
	l := New(config.Throttle{
		Default:   config.Limits{StartRate: 10, Burst: 1, MaxConnections: 10, MaxMessagesPerConnection: 100},
		Providers: map[string]config.Limits{"route:h:25": {MaxConnections: 2, MaxMessagesPerConnection: 5}},
	})
	b := l.bucket("route:h:25")
	if cap(b.conc) != 2 || b.maxPerConn != 5 {
		t.Fatalf("bucket conc=%d perconn=%d", cap(b.conc), b.maxPerConn)
	}
}
