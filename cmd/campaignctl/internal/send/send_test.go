package send

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

type env struct {
	prefix string
	ks     keyspace.Space
	rdb    *redis.Client
}

func setup(t *testing.T) *env {
	prefix := redistest.Prefix(t)
	return &env{prefix: prefix, ks: keyspace.Space(prefix), rdb: redistest.Client(t)}
}

func (e *env) run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = Run(context.Background(), e.rdb, e.ks, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

var queuedRe = regexp.MustCompile(`(?m)^queued (\S+) for (\S+)$`)

func TestSendAndWaitForDelivery(t *testing.T) {
	e := setup(t)
	sink := smtptest.Start(t, smtptest.Options{})
	enginetest.Start(t, enginetest.Config(e.prefix, sink.Addr))
	out, _, err := e.run("--from", "Ops <ops@sluice.test>", "--to", "a@example.test", "--to", "b@example.test",
		"--subject", "route test", "--text", "hello", "--header", "X-Test: 1", "--wait", "--poll", "20ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	jobs := queuedRe.FindAllStringSubmatch(out, -1)
	if len(jobs) != 2 {
		t.Fatalf("output names %d jobs:\n%s", len(jobs), out)
	}
	for _, j := range jobs {
		if !regexp.MustCompile(`(?m)^` + j[1] + " " + regexp.QuoteMeta(j[2]) + `: delivered 250 .*, attempt 1 \(`).MatchString(out) {
			t.Fatalf("no delivery line for %s:\n%s", j[1], out)
		}
	}
	if sink.Count() != 2 {
		t.Fatalf("receiver got %d messages", sink.Count())
	}
	for _, m := range sink.Messages() {
		if m.From != "ops@sluice.test" || !bytes.Contains(m.Data, []byte("\r\nX-Test: 1\r\n")) || !bytes.Contains(m.Data, []byte("Subject: route test\r\n")) {
			t.Fatalf("message from %s:\n%s", m.From, m.Data)
		}
	}
}

func TestWaitFailsWhenNotDelivered(t *testing.T) {
	e := setup(t)
	sink := smtptest.Start(t, smtptest.Options{Rcpt: func(string) error { return smtptest.Reply(550, "5.1.1", "no such user") }})
	enginetest.Start(t, enginetest.Config(e.prefix, sink.Addr))
	out, _, err := e.run("--from", "ops@sluice.test", "--to", "gone@example.test", "--subject", "s", "--html", "<p>x</p>", "--wait", "--poll", "20ms")
	if err == nil || !strings.Contains(err.Error(), "1 of 1 messages not delivered") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out, "gone@example.test: bounced 550 5.1.1 no such user") {
		t.Fatalf("output:\n%s", out)
	}
}

// --raw queues the file's message as is (completed), with no engine
// running; --wait gives up at its timeout.
func TestRawAndWaitTimeout(t *testing.T) {
	e := setup(t)
	path := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(path, []byte("From: Ops <ops@sluice.test>\nSubject: raw\n\nbody\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run("--raw", path, "--to", "a@example.test", "--wait", "--timeout", "100ms", "--poll", "20ms")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 of 1 messages not final") {
		t.Fatalf("err = %v", err)
	}
	jobs := queuedRe.FindAllStringSubmatch(out, -1)
	if len(jobs) != 1 {
		t.Fatalf("output:\n%s", out)
	}
	ctx := context.Background()
	st, err := intake.Lookup(ctx, e.rdb, e.ks, jobs[0][1])
	if err != nil || st.State != "queued" {
		t.Fatalf("status %+v %v", st, err)
	}
	q := streams.New(e.rdb, e.ks, "t")
	msg, err := q.Message(ctx, jobs[0][1])
	if err != nil || !bytes.HasPrefix(msg, []byte("Date: ")) || !bytes.HasSuffix(msg, []byte("Subject: raw\r\n\r\nbody\r\n")) {
		t.Fatalf("stored %q %v", msg, err)
	}
}

func TestUsage(t *testing.T) {
	e := setup(t)
	_, stderr, err := e.run("--help")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr, "usage: campaignctl send") || !strings.Contains(stderr, "example:\n  campaignctl send --from") {
		t.Fatalf("--help: %v\n%s", err, stderr)
	}
	for name, args := range map[string][]string{
		"no --to":        {"--from", "a@sluice.test", "--subject", "s", "--text", "t"},
		"no body":        {"--from", "a@sluice.test", "--to", "b@example.test", "--subject", "s"},
		"raw with parts": {"--raw", "x.eml", "--to", "b@example.test", "--subject", "s"},
		"unknown flag":   {"--bogus"},
		"positional":     {"--to", "b@example.test", "extra"},
		"bad header":     {"--from", "a@sluice.test", "--to", "b@example.test", "--subject", "s", "--text", "t", "--header", "nocolon"},
	} {
		if _, _, err := e.run(args...); !errors.Is(err, ErrUsage) {
			t.Errorf("%s: err = %v, want ErrUsage", name, err)
		}
	}
	if _, _, err := e.run("--from", "a@sluice.test", "--to", "not-an-address", "--subject", "s", "--text", "t"); err == nil {
		t.Error("invalid --to accepted")
	}
	if n := e.rdb.Exists(context.Background(), intake.Tally(e.ks, intake.NewID(time.Now())).Records).Val(); n != 0 {
		t.Error("a refused invocation queued something")
	}
}
