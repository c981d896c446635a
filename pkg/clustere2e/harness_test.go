package clustere2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/clustertest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// domain is every recipient's domain; every route goes to the receiver.
const domain = "cluster.test"

// world is one test's cluster, receiver and campaign.
type world struct {
	t   *testing.T
	c   *clustertest.Cluster
	rdb *redis.ClusterClient
	ks  keyspace.Space
	st  *store.Store
	rx  *receiver
	dir string
	id  string // the campaign
	n   int    // its recipients
}

func newWorld(t *testing.T, prefix string, n int) *world {
	t.Helper()
	w := &world{t: t, c: clustertest.Start(t), ks: keyspace.Space(prefix), dir: t.TempDir(), id: prefix, n: n}
	w.rdb = w.c.Client(t)
	w.st = store.New(w.rdb, w.ks)
	w.rx = newReceiver(t)
	return w
}

// launch enqueues the campaign's n recipients user%05d@cluster.test.
func (w *world) launch(opt launch.Options) {
	w.t.Helper()
	path := enginetest.Campaign(w.t, w.dir, w.id, w.n, domain)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := launch.Launch(ctx, w.rdb, w.ks, path, opt)
	if err != nil || res.Enqueued != w.n {
		w.t.Fatalf("launch: enqueued %d of %d: %v", res.Enqueued, w.n, err)
	}
}

// config is an engine's configuration on the cluster under consumer name.
func (w *world) config(consumer, addr string) *config.Config {
	cfg := enginetest.Config(string(w.ks), addr)
	cfg.Redis.Cluster = w.c.Addrs()
	cfg.Delivery.Consumer = consumer
	return cfg
}

// status is the campaign's status, or the test fails.
func (w *world) status() store.Status {
	w.t.Helper()
	s, err := w.st.Status(context.Background(), w.id)
	if err != nil {
		w.t.Fatalf("status: %v", err)
	}
	return s
}

// waitFinished waits for every recipient to have a final outcome; false
// after within.
func (w *world) waitFinished(within time.Duration) bool {
	return waitFor(within, func() bool {
		s, err := w.st.Status(context.Background(), w.id)
		return err == nil && s.State == store.StateFinished
	})
}

// waitFor polls ok every 20 ms until it holds (true) or within passes.
func waitFor(within time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// receiver counts every copy of every recipient it accepted (answered 250
// to), after an adjustable delay per message.
type receiver struct {
	*smtptest.Server
	delay atomic.Int64 // time.Duration before each reply to DATA

	mu  sync.Mutex
	got map[string]int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{got: map[string]int{}}
	r.Server = smtptest.Start(t, smtptest.Options{Discard: true, Quiet: true, Data: func(_ string, to []string, _ []byte) error {
		time.Sleep(time.Duration(r.delay.Load()))
		r.add(to)
		return nil
	}})
	return r
}

func (r *receiver) add(to []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range to {
		r.got[a]++
	}
}

// settle waits until no copy has arrived for 300 ms (at most 5 s): the
// attempts still in the receiver's think time when a campaign finishes.
func (r *receiver) settle() {
	last := -1
	waitFor(5*time.Second, func() bool {
		now := r.total()
		same := now == last
		last = now
		time.Sleep(300 * time.Millisecond)
		return same
	})
}

// total is how many copies arrived.
func (r *receiver) total() (n int) {
	for _, c := range r.copies() {
		n += c
	}
	return n
}

// copies returns how many copies each address got.
func (r *receiver) copies() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.got))
	for a, c := range r.got {
		out[a] = c
	}
	return out
}

// tally is what arrived against the campaign's n recipients: lost ones
// (no copy), duplicates (copies beyond the first), and a few examples.
type tally struct {
	lost, duplicates, strangers int
	examples                    []string
}

func (t tally) String() string {
	return fmt.Sprintf("lost=%d duplicates=%d strangers=%d %s", t.lost, t.duplicates, t.strangers, strings.Join(t.examples, " "))
}

// count compares copies with the n recipients user%05d@cluster.test.
func count(copies map[string]int, n int) tally {
	var t tally
	note := func(s string) {
		if len(t.examples) < 8 {
			t.examples = append(t.examples, s)
		}
	}
	for i := range n {
		a := fmt.Sprintf("user%05d@%s", i, domain)
		switch c := copies[a]; {
		case c == 0:
			t.lost++
			note(a + "×0")
		case c > 1:
			t.duplicates += c - 1
			note(fmt.Sprintf("%s×%d", a, c))
		}
		delete(copies, a)
	}
	for a := range copies {
		t.strangers++ // not a recipient of the campaign at all
		note(a + "?")
	}
	return t
}
