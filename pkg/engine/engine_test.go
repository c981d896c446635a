package engine_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/verp"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// run launches an n-recipient campaign, runs an engine with cfg tweaked
// by tune, and waits until the campaign is finished.
func run(t *testing.T, srv *smtptest.Server, n int, tune func(*config.Config)) (*store.Store, store.Status) {
	t.Helper()
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "c", n, "example.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, srv.Addr)
	if tune != nil {
		tune(cfg)
	}
	enginetest.Start(t, cfg)
	st := store.New(rdb, ks)
	return st, enginetest.WaitFinished(t, st, "c", 20*time.Second)
}

func TestDeferredJobIsRetriedAfterBackoffAndDelivered(t *testing.T) {
	var rcpts atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(string) error {
		if rcpts.Add(1) <= 2 { // the first two attempts are deferred
			return smtptest.Reply(450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered")
		}
		return nil
	}})
	start := time.Now()
	st, s := run(t, srv, 1, func(c *config.Config) {
		c.Lanes.Marketing.Retry = []time.Duration{300 * time.Millisecond}
	})
	if s.Delivered != 1 || s.Deferred != 0 || srv.Count() != 1 || rcpts.Load() != 3 {
		t.Fatalf("status %+v, %d messages, %d RCPTs; want delivered on the 3rd attempt", s, srv.Count(), rcpts.Load())
	}
	if el := time.Since(start); el < 2*270*time.Millisecond {
		t.Fatalf("delivered after %v: the two backoffs were not waited", el)
	}
	rec, err := st.Record(context.Background(), "c", "user00000@example.test")
	if err != nil || rec.Status != "delivered" || rec.Attempts != 3 {
		t.Fatalf("record %+v %v", rec, err)
	}
}

func TestJobPastMaxAgeBouncesAsExpired(t *testing.T) {
	var rcpts atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(string) error {
		rcpts.Add(1)
		return smtptest.Reply(452, "4.2.2", "The recipient's inbox is out of storage space")
	}})
	st, s := run(t, srv, 1, func(c *config.Config) {
		c.Lanes.Marketing.Retry = []time.Duration{200 * time.Millisecond}
		c.Lanes.Marketing.MaxAge = 900 * time.Millisecond
	})
	if s.Bounced != 1 || s.Delivered != 0 || srv.Count() != 0 {
		t.Fatalf("status %+v", s)
	}
	rec, _ := st.Record(context.Background(), "c", "user00000@example.test")
	if rec.Status != "bounced" || rec.Reason != "expired" || rec.Code != 452 {
		t.Fatalf("record %+v; want bounced, expired, last reply 452", rec)
	}
	if n := rcpts.Load(); n < 2 {
		t.Fatalf("only %d attempts before expiry", n)
	}
}

func TestNothingIsRetriedAfterA5xx(t *testing.T) {
	var rcpts atomic.Int32
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		rcpts.Add(1)
		if strings.HasPrefix(to, "user00001") {
			return smtptest.Reply(550, "5.1.1", "The email account that you tried to reach does not exist")
		}
		return nil
	}})
	st, s := run(t, srv, 3, func(c *config.Config) {
		c.Lanes.Marketing.Retry = []time.Duration{100 * time.Millisecond}
	})
	time.Sleep(700 * time.Millisecond) // several mover ticks: a retry would show
	if s.Delivered != 2 || s.Bounced != 1 || rcpts.Load() != 3 {
		t.Fatalf("status %+v after %d RCPTs; want 2 delivered, 1 bounced, 3 RCPTs", s, rcpts.Load())
	}
	rec, _ := st.Record(context.Background(), "c", "user00001@example.test")
	if rec.Status != "bounced" || rec.Code != 550 || rec.Enhanced != "5.1.1" || rec.Attempts != 1 {
		t.Fatalf("record %+v", rec)
	}
}

func TestSignedMessageVerifiesAfterDelivery(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	dir := t.TempDir()
	key, txt := enginetest.DKIMKey(t, dir, "sluice.test")
	dns := dnstest.Start(t, dnstest.TXT("s1._domainkey.sluice.test", 300, txt))
	_, s := run(t, srv, 3, func(c *config.Config) { c.DKIM = []config.DKIM{key} })
	if s.Delivered != 3 {
		t.Fatalf("status %+v", s)
	}
	for _, m := range srv.Messages() {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: dns.LookupTXT})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "sluice.test" {
			t.Fatalf("verification %+v %v of:\n%s", vs, err, m.Data)
		}
	}
}

func TestVERPEnvelopeSenderNamesTheJob(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	dir := t.TempDir()
	enginetest.Write(t, dir+"/l.csv", "email\nann@example.test\n")
	path := enginetest.Write(t, dir+"/v.yaml", "id: v\nfrom: news@sluice.test\nreturn_path: bounces@mail.sluice.test\nverp: true\nsubject: s\ntext: t\nrecipients: l.csv\n")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	if s := waitFinished(t, store.New(rdb, ks), "v"); s.Delivered != 1 {
		t.Fatalf("status %+v", s)
	}
	from := srv.Messages()[0].From
	id, err := verp.Decode(from)
	if err != nil || id != "v/2" || !strings.HasSuffix(from, "@mail.sluice.test") {
		t.Fatalf("MAIL FROM %q decodes to %q, %v; want job v/2", from, id, err)
	}
}

func TestJobsOfADeletedCampaignAreDroppedNotResurrected(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "del", 3, "example.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb, ks)
	if err := rdb.Del(context.Background(), ks.Key("campaign", "del")).Err(); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < keyspace.Shards; n++ {
		if err := rdb.Del(context.Background(), st.Tally("del").In(n).Records, st.Tally("del").In(n).Counters).Err(); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	q := streams.New(rdb, ks, "x")
	deadline := time.Now().Add(5 * time.Second)
	for laneLen(q) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := laneLen(q); n != 0 {
		t.Fatalf("%d jobs of the deleted campaign still queued", n)
	}
	if n, _ := st.Recipients(context.Background(), "del"); n != 0 || rdb.Exists(context.Background(), ks.Key("campaign", "del")).Val() != 0 || srv.Count() != 0 {
		t.Fatalf("deleted campaign resurrected (%d keys) or sent (%d messages)", n, srv.Count())
	}
}

func TestProviderRequiringTLSIsNotSentInPlaintext(t *testing.T) {
	plain := smtptest.Start(t, smtptest.Options{}) // offers no STARTTLS
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "tls", 1, "example.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := enginetest.Config(prefix, plain.Addr)
	// Routed destinations are keyed "route:HOST"; pin TLS for that key.
	cfg.Throttle.Providers = map[string]config.Limits{"route:" + plain.Addr: {RequireTLS: true}}
	cfg.Lanes.Marketing.Retry = []time.Duration{time.Hour}
	enginetest.Start(t, cfg)
	st := store.New(rdb, ks)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := st.Status(context.Background(), "tls")
		if s.Deferred == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v; want the job deferred", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if plain.Count() != 0 {
		t.Fatal("message sent in plaintext to a provider that requires TLS")
	}
	rec, _ := st.Record(context.Background(), "tls", "user00000@example.test")
	if !strings.Contains(strings.ToLower(rec.Reply), "tls") {
		t.Fatalf("record %+v does not say TLS was missing", rec)
	}
}

// laneLen is how many jobs the marketing lane's streams hold.
func laneLen(q *streams.Queue) int64 {
	n, _, _ := q.Depth(context.Background(), streams.Marketing)
	return n
}
