package engine_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/control"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/slotcheck"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// TestEveryScriptTouchesOneSlot runs a campaign through pause, resume,
// deferrals and cancel, and a transactional message, with every client
// hooked: no script and no multi-key command may name keys of two hash
// slots (Redis Cluster refuses them).
func TestEveryScriptTouchesOneSlot(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr(), PoolSize: 40})
	hook := slotcheck.Attach(t, rdb)
	t.Cleanup(func() { _ = rdb.Close() })

	var attempts atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		if attempts.Add(1)%5 == 0 { // every fifth attempt deferred: retries
			return smtptest.Reply(450, "4.2.1", "try again later")
		}
		return nil
	}})
	const n = 300
	if _, err := launch.Launch(ctx, rdb, ks, enginetest.Campaign(t, t.TempDir(), "slots", n, "example.test"), launch.Options{BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Lanes.Marketing.Retry = []time.Duration{200 * time.Millisecond}
	cfg.Lanes.Transactional.Retry = []time.Duration{200 * time.Millisecond}
	cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = 150, 150, 5
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	thr, err := throttle.FromConfig(cfg, rdb, log)
	if err != nil {
		t.Fatal(err)
	}
	defer thr.Close()
	sender := deliver.NewSMTP(deliver.SMTPConfig{Hostname: cfg.Hostname})
	defer sender.Close()
	eng := engine.New(engine.Deps{Config: cfg, Redis: rdb, Sender: sender, Throttle: thr, Log: log,
		Router: &deliver.Router{Routes: cfg.Routes}, Suppression: suppression.New(rdb, ks)})
	ectx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ectx) }()
	defer func() { stop(); eng.Abandon(); <-done }()

	st := store.New(rdb, ks)
	wait := func(what string, ok func(store.Status) bool) store.Status {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			s, err := st.Status(ctx, "slots")
			if err != nil {
				t.Fatal(err)
			}
			if ok(s) {
				return s
			}
			if time.Now().After(end) {
				t.Fatalf("%s: status %+v", what, s)
			}
		}
	}
	wait("some delivered", func(s store.Status) bool { return s.Delivered >= 50 })
	if err := control.Pause(ctx, rdb, ks, "slots"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := control.Resume(ctx, rdb, ks, "slots"); err != nil {
		t.Fatal(err)
	}
	wait("more delivered", func(s store.Status) bool { return s.Delivered >= 150 })
	q := intake.NewQueue(streams.New(rdb, ks, "api"), ks)
	queued, err := q.Enqueue(ctx, "app@sluice.test", []string{"tx1@example.test", "tx2@example.test"},
		func(to string) ([]byte, error) { return []byte("Subject: tx\r\n\r\nhi\r\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := control.Cancel(ctx, rdb, ks, "slots"); err != nil {
		t.Fatal(err)
	}
	s := wait("all settled", func(s store.Status) bool { return s.Queued == 0 })
	if s.Delivered+s.Cancelled != n || s.Delivered < 150 {
		t.Fatalf("status %+v", s)
	}
	for _, j := range queued {
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if st, err := intake.Lookup(ctx, rdb, ks, j.ID); err == nil && st.State == "delivered" {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("transactional job %s not delivered", j.ID)
			}
		}
	}
	if _, err := st.Delete(ctx, "slots"); err != nil {
		t.Fatal(err)
	}
	if bad := hook.Violations(); hook.Checked() < 100 || len(bad) > 0 {
		t.Fatalf("%d scripts and multi-key commands checked; %d across slots, the first: %v", hook.Checked(), len(bad), bad[:min(len(bad), 3)])
	}
}
