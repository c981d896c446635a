package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
)

// rcptLog records every RCPT TO a receiver saw, accepted or not.
type rcptLog struct {
	mu   sync.Mutex
	seen map[string]int
}

func (l *rcptLog) note(to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[to]++
}

func (l *rcptLog) count(to string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[to]
}

// launchAndWait launches campaign id (n recipients) and waits for it.
func launchAndWait(t *testing.T, ks keyspace.Space, id string, n int) store.Status {
	t.Helper()
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), id, n, "example.test")
	l := suppression.New(rdb, ks)
	_, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{
		Suppressed: func(ctx context.Context, lane string, addrs []string) ([]bool, error) {
			res, err := l.Check(ctx, lane, addrs)
			out := make([]bool, len(res))
			for i, e := range res {
				out[i] = e != nil
			}
			return out, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return waitFinished(t, store.New(rdb, ks), id)
}

func waitFinished(t *testing.T, st *store.Store, id string) store.Status {
	t.Helper()
	return enginetest.WaitFinished(t, st, id, 20*time.Second)
}

func TestHardBouncesAreSuppressedAndNeverAttemptedAgain(t *testing.T) {
	var log rcptLog
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error {
		log.note(to)
		var i int
		fmt.Sscanf(to, "user%05d@", &i)
		switch i % 4 {
		case 1:
			return smtptest.Reply(550, "5.1.1", "The email account that you tried to reach does not exist")
		case 2:
			return smtptest.Reply(550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent (S3150)")
		}
		return nil
	}})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))

	s := launchAndWait(t, ks, "first", 20)
	if s.Delivered != 10 || s.Bounced != 5 || s.Failed != 5 {
		t.Fatalf("first campaign %+v; want 10 delivered, 5 bounced (5.1.1), 5 failed (5.7.1)", s)
	}
	l := suppression.New(redistest.Client(t), ks)
	for i := 0; i < 20; i++ {
		addr := fmt.Sprintf("user%05d@example.test", i)
		e, err := l.Get(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 1:
			if e == nil || e.Reason != suppression.HardBounce || e.Code != 550 || e.Enhanced != "5.1.1" ||
				!strings.Contains(e.Detail, "does not exist") || e.Campaign != "first" || e.Scope != suppression.Global {
				t.Fatalf("%s: entry %+v; want a global hard bounce with the reply", addr, e)
			}
		default:
			if e != nil {
				t.Fatalf("%s suppressed (%+v) though its failure was not a hard bounce", addr, e)
			}
		}
	}

	s = launchAndWait(t, ks, "second", 20)
	if s.Suppressed != 5 || s.Delivered != 10 || s.Failed != 5 || s.Total != 20 {
		t.Fatalf("second campaign %+v; want 5 suppressed", s)
	}
	for i := 1; i < 20; i += 4 {
		if n := log.count(fmt.Sprintf("user%05d@example.test", i)); n != 1 {
			t.Fatalf("suppressed user%05d got %d RCPTs in all; want only the first campaign's", i, n)
		}
	}
}

func TestAddressSuppressedWhileQueuedIsNotDelivered(t *testing.T) {
	var log rcptLog
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error { log.note(to); return nil }})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	path := enginetest.Campaign(t, t.TempDir(), "queued", 5, "example.test")
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	// Suppressed after launch, before any engine ran.
	err := suppression.New(rdb, ks).Add(context.Background(), suppression.Entry{
		Address: "USER00003@example.test", Reason: suppression.Manual, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	s := waitFinished(t, store.New(rdb, ks), "queued")
	if s.Delivered != 4 || s.Suppressed != 1 || log.count("user00003@example.test") != 0 {
		t.Fatalf("status %+v, RCPTs to the suppressed address %d", s, log.count("user00003@example.test"))
	}
}

// TestOwnBounceCutOffBeforeItsSettleEndsBounced: a job whose hard bounce
// went on the suppression list but whose settle a restart cut off (the
// entry is written first) ends bounced with the reply its attempt got, not
// suppressed, and is not attempted again; another campaign's bounce and an
// operator's entry still suppress.
func TestOwnBounceCutOffBeforeItsSettleEndsBounced(t *testing.T) {
	var log rcptLog
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error { log.note(to); return nil }})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	ctx := context.Background()
	path := enginetest.Campaign(t, t.TempDir(), "cut", 6, "example.test")
	if _, err := launch.Launch(ctx, rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	l := suppression.New(rdb, ks)
	for _, e := range []suppression.Entry{
		// What an engine wrote for the campaign's job before a restart.
		{Address: "user00001@example.test", Reason: suppression.HardBounce, Source: "engine", Campaign: "cut",
			Code: 550, Enhanced: "5.1.1", Detail: "no such user"},
		{Address: "user00002@example.test", Reason: suppression.HardBounce, Source: "engine", Campaign: "older",
			Code: 550, Enhanced: "5.1.1", Detail: "no such user"},
		{Address: "user00003@example.test", Reason: suppression.Manual, Source: "campaignctl", Campaign: "cut"},
	} {
		if err := l.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))
	st := store.New(rdb, ks)
	s := waitFinished(t, st, "cut")
	if s.Delivered != 3 || s.Bounced != 1 || s.Suppressed != 2 {
		t.Fatalf("status %+v; want 3 delivered, 1 bounced, 2 suppressed", s)
	}
	for i := 1; i <= 3; i++ {
		if n := log.count(fmt.Sprintf("user%05d@example.test", i)); n != 0 {
			t.Fatalf("user%05d attempted %d times; want none", i, n)
		}
	}
	rec, err := st.Record(ctx, "cut", "user00001@example.test")
	if err != nil || rec.Status != "bounced" || rec.Code != 550 || rec.Enhanced != "5.1.1" || rec.Reply != "no such user" {
		t.Fatalf("record %+v %v; want bounced with the reply of its attempt", rec, err)
	}
}

func TestOneClickUnsubscribeBlocksMarketingButNotTransactional(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	const secret = "0123456789abcdef0123456789abcdef"
	signer, err := unsubscribe.NewSigner([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	list := suppression.New(rdb, ks)
	web := httptest.NewServer(unsubscribe.Handler(signer, list, nil))
	defer web.Close()
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.Unsubscribe = config.Unsubscribe{BaseURL: web.URL, Secret: secret}
	enginetest.Start(t, cfg)

	if s := launchAndWait(t, ks, "news", 1); s.Delivered != 1 {
		t.Fatalf("status %+v", s)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(srv.Messages()[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	lu, lup := msg.Header.Get("List-Unsubscribe"), msg.Header.Get("List-Unsubscribe-Post")
	if lup != "List-Unsubscribe=One-Click" || !strings.HasPrefix(lu, "<"+web.URL+"/u/") {
		t.Fatalf("List-Unsubscribe %q, -Post %q", lu, lup)
	}
	link := strings.TrimPrefix(strings.SplitN(lu, ">", 2)[0], "<")
	post := func(u string) int {
		resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tampered := link[:len(link)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(link, "AA")]
	if code := post(tampered); code < 400 || code >= 500 {
		t.Fatalf("tampered token answered %d", code)
	}
	if e, _ := list.Get(context.Background(), "user00000@example.test"); e != nil {
		t.Fatalf("tampered token suppressed: %+v", e)
	}
	if code := post(link); code != http.StatusOK {
		t.Fatalf("one-click POST answered %d", code)
	}
	e, _ := list.Get(context.Background(), "user00000@example.test")
	if e == nil || e.Reason != suppression.Unsubscribe || e.Scope != suppression.Marketing || e.Campaign != "news" {
		t.Fatalf("entry after one-click: %+v", e)
	}

	// A password reset to the same address still goes out...
	q := streams.New(rdb, ks, "test")
	tx := &streams.Job{ID: "tx-reset-1", To: "user00000@example.test", Lane: streams.Transactional,
		From: "app@sluice.test", First: time.Now().UnixMilli()}
	txTally := streams.Tally{Counters: ks.Key("tx", "counters"), Records: ks.Key("tx", "rec")}
	if err := q.AddMessage(context.Background(), tx, txTally, []byte("From: app@sluice.test\r\nTo: user00000@example.test\r\nSubject: Reset\r\n\r\nYour code\r\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Count() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if srv.Count() != 2 || !bytes.Contains(srv.Messages()[1].Data, []byte("Subject: Reset")) {
		t.Fatalf("transactional message not delivered (%d messages)", srv.Count())
	}
	// ...while the next newsletter does not.
	if s := launchAndWait(t, ks, "news2", 1); s.Suppressed != 1 || s.Delivered != 0 {
		t.Fatalf("second newsletter %+v", s)
	}
	if srv.Count() != 2 {
		t.Fatalf("receiver has %d messages, want 2", srv.Count())
	}
}
