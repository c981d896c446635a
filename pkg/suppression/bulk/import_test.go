package bulk

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pkg/suppression"
)

func badLines(res ImportResult) []int {
	var out []int
	for _, b := range res.Bad {
		out = append(out, b.Line)
	}
	return out
}

func TestImportCSVBadLines(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := strings.Join([]string{
		strings.Join(CSVHeader, ","), // 1
		`good1@x.test,hard_bounce,global,550,5.1.1,"user unknown, sorry",c1,2025-03-01T12:00:00Z,2025-03-01T12:00:00Z,engine`,
		`not-an-address,manual,,,,,,,,`,                                       // 3
		`good2@x.test,bored,,,,,,,,`,                                          // 4
		`good3@x.test,manual,,abc,,,,,,`,                                      // 5
		`good4@x.test,manual,,,,,,yesterday,,`,                                // 6
		`good5@x.test,manual`,                                                 // 7
		`good6@x.test,unsubscribe,,,,"multi`,                                  // 8
		`line detail",,,,`,                                                    // 9
		`good7@x.test,manual,,,,,,2025-03-02T00:00:00Z,2025-03-01T00:00:00Z,`, // 10
		`good8@x.test,manual,wide,,,,,,,`,                                     // 11
		`bad"quote@x.test,manual,,,,,,,,`,                                     // 12
		`GOOD9@x.test,,,,,,,,,`,                                               // 13
	}, "\n") + "\n"
	res, err := Import(ctx, f.l, strings.NewReader(in), FormatCSV, "test-import")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 4, 5, 6, 7, 10, 11, 12}; !slices.Equal(badLines(res), want) || res.BadCount != len(want) {
		t.Fatalf("bad lines %v (count %d), want %v: %+v", badLines(res), res.BadCount, want, res.Bad)
	}
	if res.Added != 3 || hlen(t, f) != 3 {
		t.Fatalf("added %d, stored %d; want 3", res.Added, hlen(t, f))
	}
	for _, b := range res.Bad {
		if b.Err == "" {
			t.Errorf("line %d: empty error", b.Line)
		}
	}
	if !strings.Contains(res.Bad[1].Err, `unknown reason "bored"`) {
		t.Errorf("line 4 error: %q", res.Bad[1].Err)
	}
	e, _ := f.l.Get(ctx, "good6@x.test")
	if e == nil || e.Detail != "multi line detail" || e.Scope != suppression.Marketing || e.Source != "test-import" {
		t.Fatalf("good6 = %+v", e)
	}
	e, _ = f.l.Get(ctx, "good9@x.test")
	if e == nil || e.Reason != suppression.Manual || e.Scope != suppression.Global {
		t.Fatalf("good9 = %+v", e)
	}
	// The audit actor of imported entries is the importer.
	if ev, _ := f.l.Audit(ctx, "good1@x.test"); len(ev) != 1 || ev[0].Actor != "test-import" {
		t.Fatalf("audit = %+v", ev)
	}
}

func TestImportCSVHeader(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, in := range []string{"email,colour\na@x.test,red\n", "reason\nmanual\n", "a@x.test,manual\n"} {
		if _, err := Import(ctx, f.l, strings.NewReader(in), FormatCSV, ""); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("import %q: %v", in, err)
		}
	}
	// A bare list of addresses under an "email" header (with Excel's BOM).
	res, err := Import(ctx, f.l, strings.NewReader("\uFEFFEmail\r\na@x.test\r\nb@x.test\r\n"), FormatCSV, "")
	if err != nil || res.Added != 2 {
		t.Fatalf("email-only import: %+v %v", res, err)
	}
	if e, _ := f.l.Get(ctx, "a@x.test"); e == nil || e.Reason != suppression.Manual || e.Source != "import" {
		t.Fatalf("defaults: %+v", e)
	}
	if _, err := Import(ctx, f.l, strings.NewReader(""), "xml", ""); err == nil {
		t.Fatal("unknown format accepted")
	}
}

func TestImportJSONLBadLines(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := strings.Join([]string{
		`{"email":"a@x.test","reason":"hard_bounce","code":550,"lane":"transactional","first_seen":"2025-03-01T12:00:00Z","last_seen":"2025-03-01T12:00:00Z","source":"engine"}`,
		``,                                    // 2: blank, skipped
		`{"email":"b@x.test",`,                // 3
		`{"email":"c@x.test","colour":"red"}`, // 4
		`{"email":"nope","reason":"manual"}`,  // 5
		`{"email":"d@x.test","reason":"complaint"}`,                           // 6
		`{"email":"e@x.test","code":"550"}`,                                   // 7
		`{"email":"f@x.test","detail":"` + strings.Repeat("x", 70_000) + `"}`, // 8
		`{"email":"g@x.test"} {"email":"h@x.test"}`,                           // 9
		`{"email":"i@x.test"}`,                                                // 10, no final newline
	}, "\n")
	res, err := Import(ctx, f.l, strings.NewReader(in), FormatJSONL, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 4, 5, 7, 8, 9}; !slices.Equal(badLines(res), want) {
		t.Fatalf("bad lines %v, want %v: %+v", badLines(res), want, res.Bad)
	}
	if res.Added != 3 || hlen(t, f) != 3 {
		t.Fatalf("added %d, stored %d", res.Added, hlen(t, f))
	}
	if e, _ := f.l.Get(ctx, "a@x.test"); e == nil || e.Lane != "transactional" || e.Code != 550 {
		t.Fatalf("a = %+v", e)
	}
}

func TestImportBadCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("email\n")
	for i := range 150 {
		fmt.Fprintf(&b, "bad%d\n", i)
	}
	b.WriteString("ok@x.test\n")
	f := newFixture(t)
	res, err := Import(context.Background(), f.l, strings.NewReader(b.String()), FormatCSV, "")
	if err != nil || res.BadCount != 150 || len(res.Bad) != MaxBadLines || res.Bad[99].Line != 101 || res.Added != 1 {
		t.Fatalf("%d bad kept of %d, added %d, err %v", len(res.Bad), res.BadCount, res.Added, err)
	}
}
