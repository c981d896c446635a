package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

const goodYAML = `id: %s
from: '"News" <news@sluice.test>'
subject: 'Hello {{.first_name}}'
text: 'Hi {{.first_name}}'
recipients: %s
`

// writeCampaign writes a campaign file and a CSV of n recipients.
func writeCampaign(t *testing.T, id string, n int) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("email,first_name\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "user%d@example.test,Name%d\n", i, i)
	}
	write(t, dir, "list.csv", b.String())
	return write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, id, "list.csv"))
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func keys(t *testing.T, rdb *redis.Client, ks keyspace.Space) []string {
	t.Helper()
	k, err := rdb.Keys(context.Background(), ks.Key()+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// crashAfterParts makes the launches of t fail as a crash would, right
// after the nth part written (of either writer); its error is returned.
func crashAfterParts(t *testing.T, n int) error {
	crash := errors.New("simulated crash")
	afterBatch = func(parts int) error {
		if parts == n {
			return crash
		}
		return nil
	}
	t.Cleanup(func() { afterBatch = nil })
	return crash
}

func TestInterruptedLaunchResumesWithoutDuplicates(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	ctx := context.Background()
	path := writeCampaign(t, "spring", 1000)

	// The crash comes after the 8th part written, about 400 rows: each
	// writer writes its shards' part of a batch, and the other writer
	// may have written one part more (its shards' checkpoints then
	// further on than the crashed one's).
	crash := crashAfterParts(t, 8)
	res, err := Launch(ctx, rdb, ks, path, Options{BatchSize: 100})
	first := res.Enqueued
	if !errors.Is(err, crash) || first < 300 || first > 500 {
		t.Fatalf("first launch: %+v, %v; want the crash after about 400", res, err)
	}
	st := store.New(rdb, ks)
	if s, _ := st.Status(ctx, "spring"); s.State != store.StateLaunching {
		t.Fatalf("state after crash %q", s.State)
	}
	afterBatch = nil
	res, err = Launch(ctx, rdb, ks, path, Options{BatchSize: 100})
	if err != nil || !res.Resumed || res.Enqueued != 1000-first || res.Duplicates != 0 {
		t.Fatalf("relaunch: %+v, %v; want %d more", res, err, 1000-first)
	}
	q := streams.New(rdb, ks, "t")
	if n, _, _ := q.Depth(ctx, streams.Marketing); n != 1000 {
		t.Fatalf("stream holds %d jobs, want 1000", n)
	}
	if n, _ := st.Recipients(ctx, "spring"); n != 1000 {
		t.Fatalf("%d recipient records, want 1000", n)
	}
	s, _ := st.Status(ctx, "spring")
	if s.Total != 1000 || s.Queued != 1000 || s.State != store.StateSending {
		t.Fatalf("status %+v", s)
	}
	// A third launch of a completed campaign enqueues nothing.
	if res, err := Launch(ctx, rdb, ks, path, Options{}); err != nil || !res.Already || res.Enqueued != 0 {
		t.Fatalf("third launch %+v %v", res, err)
	}
	if n, _, _ := q.Depth(ctx, streams.Marketing); n != 1000 {
		t.Fatalf("stream holds %d jobs after a third launch", n)
	}
}

// TestResumedLaunchFindsDuplicatesOfRowsBeforeTheCrash: rows after the
// crash repeating rows written before it (and rows after it) are
// duplicates on the relaunch too, though the relaunch never enqueued the
// earlier ones: it reads every row's address, written or not.
func TestResumedLaunchFindsDuplicatesOfRowsBeforeTheCrash(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	ctx := context.Background()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("email,first_name\n")
	distinct := map[int]bool{}
	for i := 0; i < 1000; i++ {
		n := i
		if i%10 == 9 {
			n = i / 2 // often a repeat of an earlier row: before the crash, or after it
		}
		distinct[n] = true
		fmt.Fprintf(&b, "User%d@example.test,Name%d\n", n, i)
	}
	want := len(distinct)
	write(t, dir, "list.csv", b.String())
	path := write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, "resdup", "list.csv"))
	crash := crashAfterParts(t, 8)
	first, err := Launch(ctx, rdb, ks, path, Options{BatchSize: 100})
	if !errors.Is(err, crash) {
		t.Fatalf("first launch: %+v, %v", first, err)
	}
	afterBatch = nil
	second, err := Launch(ctx, rdb, ks, path, Options{BatchSize: 100})
	if err != nil || !second.Resumed {
		t.Fatalf("relaunch: %+v, %v", second, err)
	}
	if got := first.Enqueued + second.Enqueued; got != want {
		t.Fatalf("enqueued %d + %d, want %d distinct addresses", first.Enqueued, second.Enqueued, want)
	}
	if got := first.Duplicates + second.Duplicates; got != 1000-want {
		t.Fatalf("duplicates %d + %d, want %d", first.Duplicates, second.Duplicates, 1000-want)
	}
	q := streams.New(rdb, ks, "t")
	if n, _, _ := q.Depth(ctx, streams.Marketing); n != int64(want) {
		t.Fatalf("stream holds %d jobs, want %d", n, want)
	}
}

func TestDuplicateRowsAreQueuedOnce(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	dir := t.TempDir()
	write(t, dir, "l.csv", "email,first_name\na@example.test,A\nA@EXAMPLE.TEST,A2\nb@example.test,B\n")
	path := write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, "dup", "l.csv"))
	res, err := Launch(context.Background(), rdb, ks, path, Options{})
	if err != nil || res.Enqueued != 2 || res.Duplicates != 1 || !reflect.DeepEqual(res.DuplicateLines, []int{3}) {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestDuplicateLinesAreNamed: the lines of duplicate rows are reported,
// within a batch and across batches, suppressed addresses included.
func TestDuplicateLinesAreNamed(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	dir := t.TempDir()
	write(t, dir, "l.csv", "email,first_name\n"+
		"a@example.test,A\n"+ // 2
		"A@example.test,A\n"+ // 3: duplicate in the same batch
		"c@example.test,C\n"+ // 4: suppressed
		"b@example.test,B\n"+ // 5
		"b@example.test,B\n"+ // 6: duplicate in the next batch
		"c@example.test,C\n"+ // 7: duplicate of a suppressed one
		"d@example.test,D\n"+ // 8
		"a@example.test,A\n") // 9
	path := write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, "dupl", "l.csv"))
	res, err := Launch(context.Background(), rdb, ks, path, Options{BatchSize: 2,
		Suppressed: func(_ context.Context, _ string, addrs []string) ([]bool, error) {
			out := make([]bool, len(addrs))
			for i, a := range addrs {
				out[i] = a == "c@example.test"
			}
			return out, nil
		}})
	if err != nil || res.Enqueued != 3 || res.Suppressed != 1 || res.Duplicates != 4 ||
		!reflect.DeepEqual(res.DuplicateLines, []int{3, 6, 7, 9}) {
		t.Fatalf("%+v %v; want duplicate lines 3, 6, 7, 9", res, err)
	}
}

func TestChangedContentUnderSameIDIsRefused(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	path := writeCampaign(t, "same", 3)
	if _, err := Launch(context.Background(), rdb, ks, path, Options{}); err != nil {
		t.Fatal(err)
	}
	other := writeCampaign(t, "same", 4)
	if _, err := Launch(context.Background(), rdb, ks, other, Options{}); err == nil || !strings.Contains(err.Error(), "different content") {
		t.Fatalf("err = %v", err)
	}
}

func TestSuppressedRecipientsAreCountedNotQueued(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	path := writeCampaign(t, "supp", 10)
	res, err := Launch(context.Background(), rdb, ks, path, Options{
		Suppressed: func(_ context.Context, lane string, addrs []string) ([]bool, error) {
			out := make([]bool, len(addrs))
			for i, a := range addrs {
				out[i] = lane == "marketing" && (a == "user3@example.test" || a == "user7@example.test")
			}
			return out, nil
		},
	})
	if err != nil || res.Enqueued != 8 || res.Suppressed != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	s, _ := store.New(rdb, ks).Status(context.Background(), "supp")
	if s.Total != 10 || s.Suppressed != 2 || s.Queued != 8 {
		t.Fatalf("status %+v", s)
	}
}

func TestBadCampaignsEnqueueNothing(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	list := "email,first_name\na@example.test,A\n"
	cases := []struct {
		name, yaml, csv, want string
	}{
		{"unknown key", "id: x\nfrom: a@sluice.test\nsubject: s\ntext: t\nrecipients: l.csv\nsubjet: typo\n", list, `c.yaml:6`},
		{"missing from", "id: x\nsubject: s\ntext: t\nrecipients: l.csv\n", list, `"from"`},
		{"bad template", "id: x\nfrom: a@sluice.test\nsubject: 'Hi {{.first_name'\ntext: t\nrecipients: l.csv\n", list, "subject"},
		{"missing csv", "id: x\nfrom: a@sluice.test\nsubject: s\ntext: t\nrecipients: nowhere.csv\n", list, "nowhere.csv"},
		{"csv without email", "id: x\nfrom: a@sluice.test\nsubject: s\ntext: t\nrecipients: l.csv\n", "address,name\na@example.test,A\n", "email"},
		{"field with CRLF", "id: x\nfrom: a@sluice.test\nsubject: 'Hi {{.first_name}}'\ntext: t\nrecipients: l.csv\n",
			"email,first_name\na@example.test,A\nb@example.test,\"B\r\nBcc: victim@example.test\"\n", "l.csv:3"},
		{"missing merge field", "id: x\nfrom: a@sluice.test\nsubject: 'Hi {{.nickname}}'\ntext: t\nrecipients: l.csv\n", list, "nickname"},
		{"invalid address", "id: x\nfrom: a@sluice.test\nsubject: s\ntext: t\nrecipients: l.csv\n", "email\na@example.test\nnot-an-address\n", "l.csv:3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "l.csv", c.csv)
			path := write(t, dir, "c.yaml", c.yaml)
			_, err := Launch(context.Background(), rdb, ks, path, Options{})
			if err == nil {
				t.Fatal("launch succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %q", err, c.want)
			}
			if k := keys(t, rdb, ks); len(k) != 0 {
				t.Fatalf("bad campaign wrote keys %v", k)
			}
		})
	}
}

func TestSkipInvalidEnqueuesTheRest(t *testing.T) {
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	dir := t.TempDir()
	write(t, dir, "l.csv", "email,first_name\na@example.test,A\nbroken,B\nc@example.test,C\n")
	path := write(t, dir, "c.yaml", fmt.Sprintf(goodYAML, "skip", "l.csv"))
	res, err := Launch(context.Background(), rdb, ks, path, Options{SkipInvalid: true})
	if err != nil || res.Enqueued != 2 || res.InvalidN != 1 || res.Invalid[0].Line != 3 {
		t.Fatalf("%+v %v", res, err)
	}
}
