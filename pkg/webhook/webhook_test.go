package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/events"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/webhook"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// receiver is a webhook receiver that records every event id it is
// sent, checks signatures, fails the first failFirst batches with 500, and
// can be taken down (its port refuses connections) and brought back.
type receiver struct {
	t         *testing.T
	secret    string
	addr      string
	mu        sync.Mutex
	srv       *http.Server
	seen      map[string]int
	types     map[events.Type]int
	batches   int
	failFirst int
	failed    int
	badSig    int
}

func newReceiver(t *testing.T, secret string, failFirst int) *receiver {
	r := &receiver{t: t, secret: secret, seen: map[string]int{}, types: map[events.Type]int{}, failFirst: failFirst}
	r.up("127.0.0.1:0")
	t.Cleanup(r.down)
	return r
}

func (r *receiver) up(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	_ = srv.Close()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	if !webhook.Verify(r.secret, req.Header.Get(webhook.HeaderTimestamp), body, req.Header.Get(webhook.HeaderSignature)) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.failed < r.failFirst {
		r.failed++
		http.Error(w, "not today", http.StatusInternalServerError)
		return
	}
	var b webhook.Body
	if err := json.Unmarshal(body, &b); err != nil {
		r.t.Errorf("batch: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, e := range b.Events {
		r.seen[e.ID]++
		if r.seen[e.ID] == 1 {
			r.types[e.Type]++
		}
	}
}

func (r *receiver) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// TestWebhookSeesEveryEventThroughFailuresOutageAndRestart is the
// acceptance test: 2,000 recipients, 100 of them bounced; the receiver
// fails its first 3 batches, is down for 10 s in the middle, and the
// engine (with its webhook) is restarted mid-campaign. The receiver ends
// with every event at least once, ≤ 1% duplicates, every signature valid,
// and the campaign finished while the receiver was still down.
func TestWebhookSeesEveryEventThroughFailuresOutageAndRestart(t *testing.T) {
	const n, bounces = 2000, 100
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	smtp := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		var i int
		if _, err := fmt.Sscanf(to, "user%05d@", &i); err == nil && i%(n/bounces) == 7 {
			return smtptest.Reply(550, "5.1.1", "no such user")
		}
		return nil
	}})
	rcv := newReceiver(t, "s3cret", 3)
	hook := config.Webhook{Name: "crm", URL: "http://" + rcv.addr + "/events", Secret: "s3cret", Batch: 50, Timeout: 2 * time.Second, RetryFor: time.Hour}
	cfg := enginetest.Config(prefix, smtp.Addr)
	cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate = 400, 400
	cfg.Throttle.Default.Burst = 50
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := webhook.Options{Owner: "test", LeaseTTL: 3 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Poll: 200 * time.Millisecond}

	// An "engine" is the delivery engine and its webhook, as cmd/engine runs them.
	start := func() (stop func()) {
		stopEngine := enginetest.StartStoppable(t, cfg)
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); webhook.Run(wctx, rdb, ks, []config.Webhook{hook}, opts, log) }()
		return func() { stopEngine(); cancel(); <-done }
	}
	stop := start()
	defer func() { stop() }()
	for cur := ""; cur == ""; time.Sleep(20 * time.Millisecond) {
		var err error
		if cur, err = webhook.Cursor(ctx, rdb, ks, hook); err != nil {
			t.Fatal(err)
		}
	}

	began := time.Now()
	path := enginetest.Campaign(t, t.TempDir(), "wh", n, "example.test")
	if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, ks)

	// The receiver goes down for 10 s once it has seen 1,000 events.
	var upAgain time.Time
	outage := make(chan struct{})
	go func() {
		defer close(outage)
		for rcv.unique() < 1000 {
			time.Sleep(10 * time.Millisecond)
		}
		port := rcv.addr
		rcv.down()
		time.Sleep(10 * time.Second)
		upAgain = time.Now()
		rcv.up(port)
	}()
	// The engine restarts once 800 recipients are done.
	for {
		s, err := st.Status(ctx, "wh")
		if err != nil {
			t.Fatal(err)
		}
		if s.Delivered+s.Bounced >= 800 {
			break
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("campaign stuck: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	stop = start()
	s := enginetest.WaitFinished(t, st, "wh", 25*time.Second)
	finished := time.Now()
	if s.Delivered != n-bounces || s.Bounced != bounces {
		t.Fatalf("campaign %+v, want %d delivered and %d bounced", s, n-bounces, bounces)
	}

	// Every event in the stream reaches the receiver.
	all, err := events.New(rdb, ks).Read(ctx, "0", 100000, -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2*n {
		t.Fatalf("stream holds %d events, want %d (queued + outcome per recipient)", len(all), 2*n)
	}
	// The deadline counts from the receiver's return (on a loaded
	// machine the outage may begin, and so end, late).
	<-outage
	deadline := time.Now().Add(20 * time.Second)
	for rcv.unique() < len(all) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var missing []string
	dups := 0
	for _, e := range all {
		switch c := rcv.seen[e.ID]; {
		case c == 0:
			missing = append(missing, e.ID)
		case c > 1:
			dups += c - 1
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d events never reached the receiver, e.g. %s", len(missing), len(all), strings.Join(missing[:min(5, len(missing))], " "))
	}
	// At least once: a batch in flight when the receiver goes down, and
	// one in flight when the engine restarts, may each come again whole.
	if dups > 2*hook.Batch {
		t.Errorf("%d duplicates of %d events: more than the two batches (%d each) in flight at the outage and the restart", dups, len(all), hook.Batch)
	}
	if rcv.badSig > 0 || rcv.failed != 3 {
		t.Errorf("%d bad signatures, %d failed batches (want 0 and 3)", rcv.badSig, rcv.failed)
	}
	if rcv.types[events.Bounced] != bounces || rcv.types[events.Delivered] != n-bounces || rcv.types[events.Queued] != n {
		t.Errorf("event types seen: %v", rcv.types)
	}
	if !finished.Before(upAgain) {
		t.Errorf("campaign finished %v after start, receiver back at %v: a dead webhook slowed delivery?", finished.Sub(began), upAgain.Sub(began))
	}
	t.Logf("campaign finished in %v (receiver down meanwhile); %d events, %d batches, %d duplicates; receiver back after %v",
		finished.Sub(began).Round(time.Millisecond), len(all), rcv.batches, dups, upAgain.Sub(began).Round(time.Millisecond))
}

func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"webhook":"crm","events":[]}`)
	sig := webhook.Sign("k", "1700000000", body)
	if !strings.HasPrefix(sig, "v1=") || len(sig) != 67 {
		t.Fatalf("signature %q", sig)
	}
	if !webhook.Verify("k", "1700000000", body, sig) || webhook.Verify("k", "1700000001", body, sig) || webhook.Verify("j", "1700000000", body, sig) {
		t.Fatal("verify accepts what it should not, or refuses the right signature")
	}
}
