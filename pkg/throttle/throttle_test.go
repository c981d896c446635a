package throttle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
)

func TestAcquireBoundsConcurrencyPerKey(t *testing.T) {
	l := New(config.Throttle{Default: config.Limits{StartRate: 1e6, Burst: 100, MaxConnections: 3}})
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, release, err := l.Acquire(context.Background(), "k")
			if err != nil {
				t.Error(err)
				return
			}
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			cur.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak concurrency %d, want 3", p)
	}
}

func TestProviderOverridesDefault(t *testing.T) {
	l := New(config.Throttle{
		Default:   config.Limits{StartRate: 10, Burst: 1, MaxConnections: 10, MaxMessagesPerConnection: 100},
		Providers: map[string]config.Limits{"route:h:25": {MaxConnections: 2, MaxMessagesPerConnection: 5}},
	})
	b := l.Bucket("route:h:25")
	if cap(b.conc) != 2 || b.MaxPerConn != 5 {
		t.Fatalf("bucket conc=%d perconn=%d", cap(b.conc), b.MaxPerConn)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.Acquire(ctx, "other"); err == nil {
		t.Fatal("Acquire on a cancelled context succeeded")
	}
}
