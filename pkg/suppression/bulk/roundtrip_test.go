package bulk

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/suppression"
)

// genEntries makes n varied entries: all reasons and scopes, domain
// entries, reply text that needs CSV quoting, non-ASCII, HTML characters.
func genEntries(n int) []suppression.Entry {
	es := make([]suppression.Entry, n)
	for i := range es {
		es[i] = genEntry(i)
	}
	return es
}

var (
	genReasons = []suppression.Reason{suppression.HardBounce, suppression.Unsubscribe, suppression.Complaint, suppression.Manual, suppression.SoftBounceLimit}
	genDetails = []string{"", "550 5.1.1 <x@y> user unknown", `said "no", then left`, "Grüße, 😀 & <b>", "=cmd|' /C calc'!A0", " padded "}
)

func genEntry(i int) suppression.Entry {
	r := genReasons[i%len(genReasons)]
	e := suppression.Entry{
		Address:   fmt.Sprintf("User%d.%c@Dom%d.test", i, 'a'+rune(i%26), i%997),
		Reason:    r,
		Detail:    genDetails[i%len(genDetails)],
		Campaign:  fmt.Sprintf("camp-%d", i%13),
		Lane:      []string{suppression.LaneMarketing, suppression.LaneTransactional, ""}[i%3],
		Source:    []string{"engine", "one-click", "import", "campaignctl"}[i%4],
		FirstSeen: t0.Add(time.Duration(i) * time.Minute),
	}
	e.LastSeen = e.FirstSeen.Add(time.Duration(i%5) * time.Hour)
	if r == suppression.HardBounce || r == suppression.SoftBounceLimit {
		e.Code, e.Enhanced = 550+i%3, fmt.Sprintf("5.%d.%d", i%8, i%3)
	}
	if r == suppression.Manual && i%2 == 0 {
		e.Scope = suppression.Marketing
	}
	if i%500 == 7 {
		e.Address = fmt.Sprintf("@Blocked%d.test", i)
	}
	return e
}

func export(t testing.TB, l *suppression.List, format string, f suppression.Filter, opts ...Option) ([]byte, int) {
	t.Helper()
	var b bytes.Buffer
	n, err := Export(context.Background(), l, &b, format, f, opts...)
	if err != nil {
		t.Fatalf("Export %s: %v", format, err)
	}
	return b.Bytes(), n
}

func removeAll(t testing.TB, l *suppression.List) int {
	t.Helper()
	var addrs []string
	if err := l.Scan(context.Background(), suppression.Filter{}, func(e suppression.Entry) error { addrs = append(addrs, e.Address); return nil }); err != nil {
		t.Fatal(err)
	}
	n, err := l.RemoveMany(context.Background(), addrs, "test", "round trip")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExportRemoveImportRoundTrip(t *testing.T) {
	const n = 20_000
	ctx := context.Background()
	f := newFixture(t)
	if err := f.l.AddMany(ctx, genEntries(n)); err != nil {
		t.Fatal(err)
	}
	csv1, cn := export(t, f.l, FormatCSV, suppression.Filter{})
	if cn != n {
		t.Fatalf("exported %d, want %d", cn, n)
	}
	lines := strings.Split(strings.TrimSuffix(string(csv1), "\n"), "\n")
	if len(lines) != n+1 || lines[0] != strings.Join(CSVHeader, ",") {
		t.Fatalf("csv: %d lines, header %q", len(lines), lines[0])
	}
	if !slices.IsSorted(lines[1:]) {
		t.Fatal("csv export not sorted by address")
	}
	// One line, byte for byte: quoting, times, empty code.
	want := `user1.b@dom1.test,unsubscribe,marketing,,,550 5.1.1 <x@y> user unknown,camp-1,2025-03-01T12:01:00Z,2025-03-01T13:01:00Z,one-click`
	if !slices.Contains(lines, want) {
		t.Fatalf("csv lacks %q", want)
	}
	if !slices.Contains(lines, `user2.c@dom2.test,complaint,marketing,,,"said ""no"", then left",camp-2,2025-03-01T12:02:00Z,2025-03-01T14:02:00Z,import`) {
		t.Fatal("csv quoting")
	}

	if got := removeAll(t, f.l); got != n {
		t.Fatalf("removed %d", got)
	}
	if ex, _ := f.rdb.Exists(ctx, f.hashes...).Result(); ex != 0 {
		t.Fatal("entries left after removing all")
	}
	res, err := Import(ctx, f.l, bytes.NewReader(csv1), FormatCSV, Defaults{Source: "restore"})
	if err != nil || res.Added != n || res.Updated != 0 || res.BadCount != 0 {
		t.Fatalf("import csv: %+v, %v", res, err)
	}
	if csv2, _ := export(t, f.l, FormatCSV, suppression.Filter{}); !bytes.Equal(csv1, csv2) {
		t.Fatal("csv export after round trip differs")
	}
	// Importing again is a no-op, audit included.
	events := xlen(t, f)
	res, err = Import(ctx, f.l, bytes.NewReader(csv1), FormatCSV, Defaults{Source: "restore"})
	if err != nil || res.Unchanged != n || res.Added+res.Updated != 0 {
		t.Fatalf("re-import: %+v, %v", res, err)
	}
	if xlen(t, f) != events {
		t.Fatal("re-import wrote audit events")
	}

}

// JSONL keeps the lane too, so its round trip is exact as well, and
// spilling sorted runs to disk exports the same bytes as sorting in memory.
func TestJSONLRoundTripAndSpill(t *testing.T) {
	const n = 3000
	ctx := context.Background()
	f := newFixture(t)
	if err := f.l.AddMany(ctx, genEntries(n)); err != nil {
		t.Fatal(err)
	}
	csv1, _ := export(t, f.l, FormatCSV, suppression.Filter{})
	jsonl1, _ := export(t, f.l, FormatJSONL, suppression.Filter{})
	if spilled, _ := export(t, f.l, FormatCSV, suppression.Filter{}, withSortMemory(16<<10)); !bytes.Equal(spilled, csv1) {
		t.Fatal("export with on-disk runs differs")
	}
	for _, want := range []string{
		`{"email":"@blocked1007.test","reason":"complaint","scope":"marketing","detail":"padded","campaign":"camp-6","first_seen":"2025-03-02T04:47:00Z","last_seen":"2025-03-02T06:47:00Z","source":"campaignctl"}`,
		`{"email":"user0.a@dom0.test","reason":"hard_bounce","scope":"global","code":550,"enhanced_code":"5.0.0","campaign":"camp-0","lane":"marketing","first_seen":"2025-03-01T12:00:00Z","last_seen":"2025-03-01T12:00:00Z","source":"engine"}`,
		`{"email":"user3.d@dom3.test","reason":"manual","scope":"global","detail":"Grüße, 😀 & <b>","campaign":"camp-3","lane":"marketing","first_seen":"2025-03-01T12:03:00Z","last_seen":"2025-03-01T15:03:00Z","source":"campaignctl"}`,
	} {
		if !strings.Contains(string(jsonl1), want+"\n") {
			t.Errorf("jsonl lacks %s", want)
		}
	}
	removeAll(t, f.l)
	if res, err := Import(ctx, f.l, bytes.NewReader(jsonl1), FormatJSONL, Defaults{Source: "restore"}); err != nil || res.Added != n {
		t.Fatalf("import jsonl: %+v, %v", res, err)
	}
	if jsonl2, _ := export(t, f.l, FormatJSONL, suppression.Filter{}); !bytes.Equal(jsonl1, jsonl2) {
		t.Fatal("jsonl export after round trip differs")
	}
	if csv3, _ := export(t, f.l, FormatCSV, suppression.Filter{}); !bytes.Equal(csv1, csv3) {
		t.Fatal("csv export after jsonl round trip differs")
	}
}

func TestExportFilter(t *testing.T) {
	f := newFixture(t)
	if err := f.l.AddMany(context.Background(), genEntries(100)); err != nil {
		t.Fatal(err)
	}
	if _, n := export(t, f.l, FormatJSONL, suppression.Filter{Reason: suppression.HardBounce}); n != 20 {
		t.Fatalf("reason filter: %d", n)
	}
	// genEntries: LastSeen = t0 + i min + (i%5) h; i >= 90 are all past t0+90m+...
	since := t0.Add(100 * time.Minute)
	want := 0
	for _, e := range genEntries(100) {
		if !e.LastSeen.Before(since) {
			want++
		}
	}
	if _, n := export(t, f.l, FormatCSV, suppression.Filter{Since: since}); n != want {
		t.Fatalf("since filter: %d, want %d", n, want)
	}
	if _, err := Export(context.Background(), f.l, &bytes.Buffer{}, "xml", suppression.Filter{}); err == nil {
		t.Fatal("unknown format accepted")
	}
	if _, err := Export(context.Background(), f.l, &bytes.Buffer{}, FormatCSV, suppression.Filter{Reason: "bored"}); err == nil {
		t.Fatal("unknown reason accepted")
	}
}

func TestRunSorter(t *testing.T) {
	s := newRunSorter(t.TempDir(), 200) // a run every few pairs
	defer s.close()
	var want []string
	for i := range 500 {
		k := fmt.Sprintf("k%05d", (i*7919)%450) // 50 keys come twice
		if err := s.add(k, "v"+k); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(want, k) {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	if len(s.runs) < 10 {
		t.Fatalf("only %d runs spilled", len(s.runs))
	}
	var got []string
	err := s.each(func(k, v string) error {
		if v != "v"+k {
			t.Fatalf("value %q for %q", v, k)
		}
		got = append(got, k)
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("merged %d keys (%v), want %d", len(got), err, len(want))
	}
}
