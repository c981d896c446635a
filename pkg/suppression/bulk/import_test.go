package bulk

import (
	"context"
	"errors"
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
	res, err := Import(ctx, f.l, strings.NewReader(in), FormatCSV, Defaults{Source: "test-import"})
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
	for in, want := range map[string]string{
		"email,colour\na@x.test,red\n": `line 1: unknown column "colour" (known: email,reason,scope,code,enhanced_code,detail,campaign,first_seen,last_seen,source,lane; the address column may also be named Email Address, E-mail, mail)`,
		"Emial\na@x.test\n":            `line 1: unknown column "Emial" (did you mean "email"?) (known: email,reason,scope,code,enhanced_code,detail,campaign,first_seen,last_seen,source,lane; the address column may also be named Email Address, E-mail, mail)`,
		"reason\nmanual\n":             `line 1: no address column in header "reason" (name it email, or give a plain list of addresses, one per line)`,
		"email,E-mail\n":               `line 1: columns "email" and "E-mail" both name email`,
		"a@x.test,manual\n":            "line 1: a list without a header line has one address per line; add a header (e.g. email,reason) to import more columns",
	} {
		_, err := Import(ctx, f.l, strings.NewReader(in), FormatCSV, Defaults{})
		var le *LineError
		if !errors.As(err, &le) || err.Error() != "import: "+want {
			t.Errorf("import %q:\n got %v\nwant import: %s", in, err, want)
		}
	}
	// The address column under the names other tools give it (with Excel's BOM).
	for i, h := range []string{"\uFEFFEmail", "Email Address", "email_address", "E-mail", " MAIL ", "Address", "e-mail address"} {
		addr := fmt.Sprintf("h%d@x.test", i)
		res, err := Import(ctx, f.l, strings.NewReader(h+"\r\n"+addr+"\r\n"), FormatCSV, Defaults{})
		if err != nil || res.Added != 1 {
			t.Fatalf("header %q: %+v %v", h, res, err)
		}
	}
	if e, _ := f.l.Get(ctx, "h0@x.test"); e == nil || e.Reason != suppression.Manual || e.Source != "import" {
		t.Fatalf("defaults: %+v", e)
	}
	if _, err := Import(ctx, f.l, strings.NewReader(""), "xml", Defaults{}); err == nil {
		t.Fatal("unknown format accepted")
	}
	if _, err := Import(ctx, f.l, strings.NewReader("a@x.test\n"), FormatCSV, Defaults{Reason: "bored"}); err == nil ||
		!strings.Contains(err.Error(), `import: default unknown reason "bored"`) {
		t.Fatalf("bad default reason: %v", err)
	}
}

// A plain list of addresses, one per line and no header, takes the
// default reason; a bad row is reported by its line.
func TestImportHeaderless(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := "\uFEFFimp5@example.org\nIMP6@Example.org\n\nnope\nimp7@example.org,extra\nimp8@example.org"
	res, err := Import(ctx, f.l, strings.NewReader(in), FormatCSV, Defaults{Reason: suppression.HardBounce, Source: "old-esp"})
	if err != nil || res.Added != 3 || res.BadCount != 2 {
		t.Fatalf("import: %+v %v", res, err)
	}
	want := []LineError{{4, `invalid address "nope": no @ (write @nope to suppress a whole domain)`}, {5, "wrong number of fields"}}
	if !slices.Equal(res.Bad, want) {
		t.Fatalf("bad lines %+v, want %+v", res.Bad, want)
	}
	for _, a := range []string{"imp5@example.org", "imp6@example.org", "imp8@example.org"} {
		if e, _ := f.l.Get(ctx, a); e == nil || e.Reason != suppression.HardBounce || e.Scope != suppression.Global || e.Source != "old-esp" {
			t.Fatalf("%s: %+v", a, e)
		}
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
	res, err := Import(ctx, f.l, strings.NewReader(in), FormatJSONL, Defaults{})
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
	res, err := Import(context.Background(), f.l, strings.NewReader(b.String()), FormatCSV, Defaults{})
	if err != nil || res.BadCount != 150 || len(res.Bad) != MaxBadLines || res.Bad[99].Line != 101 || res.Added != 1 {
		t.Fatalf("%d bad kept of %d, added %d, err %v", len(res.Bad), res.BadCount, res.Added, err)
	}
}
