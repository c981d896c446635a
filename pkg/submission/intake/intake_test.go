package intake

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func TestPrepareRawCompletesAndCleansTheHeader(t *testing.T) {
	in := "From: App <app@sluice.test>\nBcc: hidden@example.test,\n  other@example.test\nSubject: hi\n\nline one\nline two\n"
	r, err := PrepareRaw([]byte(in), now)
	if err != nil {
		t.Fatal(err)
	}
	got := string(r.Msg)
	head, rest, _ := strings.Cut(got, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	if lines[0] != "Date: Tue, 04 Mar 2025 05:06:07 +0000" || !strings.HasPrefix(lines[1], "Message-ID: <") || !strings.HasSuffix(lines[1], "@sluice.test>") {
		t.Fatalf("Date and Message-ID not added first:\n%s", got)
	}
	if strings.Contains(got, "hidden") || strings.Contains(got, "Bcc") {
		t.Fatalf("Bcc (with its continuation line) kept:\n%s", got)
	}
	if strings.Join(lines[2:], "|") != "From: App <app@sluice.test>|Subject: hi" || rest != "line one\r\nline two\r\n" {
		t.Fatalf("message not kept as sent, with CRLF:\n%q", got)
	}
	if len(r.From) != 1 || r.From[0].Address != "app@sluice.test" || r.Sender != nil {
		t.Fatalf("From %v Sender %v", r.From, r.Sender)
	}

	// Present Date and Message-ID are kept; a header-only message gets
	// its blank line; a CRLF message is not copied.
	in = "Date: Mon, 3 Mar 2025 00:00:00 +0000\r\nMessage-ID: <x@y.test>\r\nFrom: a@b.test\r\nSender: s@b.test"
	if r, err = PrepareRaw([]byte(in), now); err != nil {
		t.Fatal(err)
	}
	if string(r.Msg) != in+"\r\n\r\n" || r.Sender == nil || r.Sender.Address != "s@b.test" {
		t.Fatalf("got %q, sender %v", r.Msg, r.Sender)
	}
}

func TestPrepareRawRefusesMalformed(t *testing.T) {
	for name, in := range map[string]string{
		"empty":                "",
		"no header":            "\r\nbody",
		"no From":              "Subject: x\r\n\r\nbody",
		"two From":             "From: a@b.test\r\nFrom: c@d.test\r\n\r\n",
		"bad From":             "From: not an address\r\n\r\n",
		"two Sender":           "From: a@b.test\r\nSender: a@b.test\r\nSender: c@d.test\r\n\r\n",
		"continuation first":   " folded\r\nFrom: a@b.test\r\n\r\n",
		"line without colon":   "From: a@b.test\r\nnot a header\r\n\r\n",
		"space in field name":  "From: a@b.test\r\nX Bad: 1\r\n\r\n",
		"empty From addresses": "From: \r\n\r\n",
	} {
		if _, err := PrepareRaw([]byte(in), now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestComposeSendsPartsLiterally(t *testing.T) {
	c, err := Compose(Parts{From: "Shop <orders@sluice.test>", Subject: "Order {{.id}}",
		Text: "Total: {{ 3 }}\n", HTML: "<p>{{.x}}</p>", Headers: map[string]string{"X-Order": "{{1}}"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.From() != "orders@sluice.test" {
		t.Fatalf("From %q", c.From())
	}
	msg, err := c.Render("buyer@example.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Subject: Order {{.id}}\r\n", "X-Order: {{1}}\r\n", "To: buyer@example.test\r\n", "Total: {{ 3 }}", "<p>{{.x}}</p>", "Message-ID: <"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if _, err := Compose(Parts{From: "a@b.test", Subject: "s", Text: "t", Headers: map[string]string{"Bcc": "x@y.test"}}); err == nil {
		t.Fatal("a Bcc header was accepted")
	}
}

func TestEnqueueAndLookup(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	sq := streams.New(rdb, ks, "t")
	if err := sq.Init(ctx); err != nil {
		t.Fatal(err)
	}
	q := NewQueue(sq, ks)
	queued, err := q.Enqueue(ctx, "app@sluice.test", []string{"a@example.test", "b@example.test"},
		func(to string) ([]byte, error) { return []byte("To: " + to + "\r\n\r\nhi\r\n"), nil })
	if err != nil || len(queued) != 2 || queued[0].ID == queued[1].ID || len(queued[0].ID) != len("20060102-")+26 {
		t.Fatalf("queued %+v, %v", queued, err)
	}
	ds, _, err := sq.Read(ctx, streams.Transactional, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("read %d jobs, %v", len(ds), err)
	}
	for i, d := range ds {
		if d.ID != queued[i].ID || d.To != queued[i].To || d.From != "app@sluice.test" || !d.HasMessage || d.First == 0 {
			t.Fatalf("job %+v", d.Job)
		}
		msg, _ := sq.Message(ctx, d.ID)
		if string(msg) != "To: "+d.To+"\r\n\r\nhi\r\n" {
			t.Fatalf("message %q", msg)
		}
	}
	st, err := Lookup(ctx, rdb, ks, queued[0].ID)
	if err != nil || st.State != "queued" || st.Final || st.Last != nil {
		t.Fatalf("status %+v %v", st, err)
	}
	at := time.Now().Truncate(time.Millisecond)
	rec := streams.Record{Status: "bounced", Code: 550, Enhanced: "5.1.1", Reply: "no such user", Host: "mx.example.test", Attempts: 1, At: at.UnixMilli()}
	if _, err := sq.Settle(ctx, ds[0], Tally(ks, queued[0].ID), rec, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	st, err = Lookup(ctx, rdb, ks, queued[0].ID)
	want := Attempt{Code: 550, Enhanced: "5.1.1", Text: "no such user", Host: "mx.example.test", At: at.UTC()}
	if err != nil || st.State != "bounced" || !st.Final || st.Attempts != 1 || st.Last == nil || *st.Last != want {
		t.Fatalf("status %+v last %+v, %v", st, st.Last, err)
	}
	if _, err := Lookup(ctx, rdb, ks, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}

	// A build failure queues nothing for that recipient and stops.
	boom := errors.New("boom")
	queued, err = q.Enqueue(ctx, "app@sluice.test", []string{"c@example.test"}, func(string) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) || len(queued) != 0 {
		t.Fatalf("build failure: %+v %v", queued, err)
	}
}

func TestDomains(t *testing.T) {
	d := NewDomains([]string{"Sluice.TEST", " b.test "})
	for addr, want := range map[string]bool{"x@sluice.test": true, "x@SLUICE.test": true, "x@b.test": true,
		"x@sub.sluice.test": false, "x@sluice.test.evil": false, "sluice.test": false, "": false} {
		if d.Allows(addr) != want {
			t.Errorf("Allows(%q) = %v", addr, !want)
		}
	}
}

// Records of transactional mail live in a hash per day of enqueue that
// expires RecordRetention after the day; the id says which day.
func TestRecordsAreKeptPerDayAndExpire(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	q := NewQueue(streams.New(rdb, ks, "t"), ks)
	day := time.Date(2026, 11, 22, 23, 59, 0, 0, time.UTC)
	q.now = func() time.Time { return day }
	queued, err := q.Enqueue(context.Background(), "app@sluice.test", []string{"a@example.test"},
		func(string) ([]byte, error) { return []byte("Subject: x\r\n\r\nx\r\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	id := queued[0].ID
	if !strings.HasPrefix(id, "20261122-") {
		t.Fatalf("id %q does not start with its day", id)
	}
	key := ks.In(keyspace.ShardOf(id), "tx", "rec", "20261122")
	if n := rdb.HLen(context.Background(), key).Val(); n != 1 {
		t.Fatalf("day hash %s holds %d records", key, n)
	}
	want := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(streams.RecordRetention)
	if at := time.UnixMilli(rdb.PExpireTime(context.Background(), key).Val().Milliseconds()); !at.Equal(want) {
		t.Fatalf("day hash expires at %v, want %v", at.UTC(), want)
	}
	if st, err := Lookup(context.Background(), rdb, ks, id); err != nil || st.State != "queued" {
		t.Fatalf("lookup %+v %v", st, err)
	}
	if _, err := Lookup(context.Background(), rdb, ks, "no-day-"+id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of an id without a day: %v", err)
	}
}
