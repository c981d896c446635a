package campaign

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// step is what one Next call should return: a recipient (Email set) or a
// *RecipientError at Line whose message contains Err.
type step struct {
	Line   int
	Email  string
	Fields map[string]string
	Err    string
}

func readAll(t *testing.T, path string) []step {
	t.Helper()
	r, err := OpenRecipients(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []step
	for i := 0; i < 1000; i++ {
		rc, err := r.Next()
		if err == io.EOF {
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after EOF = %v", err)
			}
			return got
		}
		var re *RecipientError
		switch {
		case errors.As(err, &re):
			if re.Path != path || !strings.HasPrefix(re.Error(), fmt.Sprintf("%s:%d: ", path, re.Line)) {
				t.Errorf("error not in file:line form: %q", re.Error())
			}
			got = append(got, step{Line: re.Line, Err: re.Reason})
		case err != nil:
			t.Fatalf("fatal error: %v", err)
		default:
			got = append(got, step{Line: rc.Line, Email: rc.Email, Fields: rc.Fields})
		}
	}
	t.Fatal("reader does not end")
	return nil
}

func checkSteps(t *testing.T, got, want []step) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d results, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		ok := g.Line == w.Line && g.Email == w.Email
		if w.Err != "" {
			ok = ok && strings.Contains(g.Err, w.Err)
		} else {
			ok = ok && g.Err == "" && reflect.DeepEqual(g.Fields, w.Fields)
		}
		if !ok {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestCSVBadRowsAreReportedAndSkipped(t *testing.T) {
	got := readAll(t, "testdata/mixed.csv")
	checkSteps(t, got, []step{
		{Line: 2, Email: "ann@example.test", Fields: map[string]string{"first_name": "Ann", "city": "Oslo"}},
		{Line: 3, Err: `invalid address "bob@": `},
		{Line: 4, Err: `invalid address "Carol <carol@example.test>": want a bare address`},
		{Line: 5, Err: "has 2 fields, the header has 3"},
		{Line: 6, Err: `eve@example.test: field "first_name" contains a line break or NUL (refused: it could inject mail headers) (a quoted field ran over 2 lines)`},
		{Line: 8, Email: "frank@example.test", Fields: map[string]string{"first_name": "Frank", "city": "Vienna"}},
		{Line: 9, Err: "missing email address"},
		{Line: 10, Err: "has 4 fields, the header has 3"},
		{Line: 11, Email: "heidi@example.test", Fields: map[string]string{"first_name": "Heidi", "city": "Zürich"}},
	})
}

func TestCSVRecipientErrorMessage(t *testing.T) {
	r, err := OpenRecipients("testdata/mixed.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Next()
	_, err = r.Next()
	var re *RecipientError
	if !errors.As(err, &re) || re.Email != "bob@" || !strings.HasPrefix(err.Error(), `testdata/mixed.csv:3: invalid address "bob@": `) {
		t.Fatalf("err = %v (%+v)", err, re)
	}
}

func TestCSVBOMCRLFQuotes(t *testing.T) {
	r, err := OpenRecipients("testdata/bom_crlf.csv")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Columns(); !reflect.DeepEqual(got, []string{"Email", "first_name", "city"}) {
		t.Errorf("Columns = %q", got)
	}
	r.Close()
	checkSteps(t, readAll(t, "testdata/bom_crlf.csv"), []step{
		{Line: 2, Email: "ann@example.test", Fields: map[string]string{"first_name": "Ann", "city": "Oslo"}},
		{Line: 3, Email: "bob@example.test", Fields: map[string]string{"first_name": "Bob, Jr.", "city": `say "hi"`}},
		{Line: 5, Email: "carol@example.test", Fields: map[string]string{"first_name": "", "city": ""}},
	})
}

func TestCSVMalformedQuotes(t *testing.T) {
	checkSteps(t, readAll(t, "testdata/bare_quote.csv"), []step{
		{Line: 2, Email: "ann@example.test", Fields: map[string]string{"name": "Ann"}},
		{Line: 3, Err: `malformed CSV: extraneous or missing " in quoted-field`},
		{Line: 4, Email: "carol@example.test", Fields: map[string]string{"name": "Carol"}},
	})
	// An unterminated quote swallows the rest of the file; the error
	// says which lines were lost instead of silently ending the list.
	checkSteps(t, readAll(t, "testdata/unterminated.csv"), []step{
		{Line: 2, Err: "(the record runs on to line 3: line 3 was not read as recipients)"},
	})
	path := filepath.Join(t.TempDir(), "u.csv")
	os.WriteFile(path, []byte("email\nann@example.test\n\"b@example.test\nc@example.test\nd@example.test\n"), 0o600)
	checkSteps(t, readAll(t, path), []step{
		{Line: 2, Email: "ann@example.test", Fields: map[string]string{}},
		{Line: 3, Err: "lines 4-5 were not read as recipients"},
	})
}

func TestCSVNotUTF8(t *testing.T) {
	checkSteps(t, readAll(t, "testdata/latin1.csv"), []step{
		{Line: 2, Err: `field "name" is not valid UTF-8`},
	})
}

func TestOpenRecipientsErrors(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"no_email.csv", `testdata/no_email.csv:1: no "email" column in header (columns: mail, first_name)`},
		{"semicolon.csv", `testdata/semicolon.csv:1: no "email" column in header (columns: email;first_name;city); the file looks semicolon- or tab-separated`},
		{"dup_column.csv", `testdata/dup_column.csv:1: duplicate column "city"`},
		{"empty.csv", `testdata/empty.csv: empty file: want a header row with an "email" column`},
		{"list.txt", `testdata/list.txt: unsupported recipients format ".txt": want .csv, .jsonl or .ndjson`},
		{"absent.csv", `open testdata/absent.csv: no such file or directory`},
	} {
		r, err := OpenRecipients(filepath.Join("testdata", tc.file))
		if err == nil {
			r.Close()
			t.Errorf("%s: opened", tc.file)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.file, err, tc.want)
		}
	}
}

func TestJSONLVariants(t *testing.T) {
	checkSteps(t, readAll(t, "testdata/mixed.jsonl"), []step{
		{Line: 1, Email: "ann@example.test", Fields: map[string]string{"first_name": "Ann", "age": "31", "vip": "true", "note": ""}},
		{Line: 3, Err: "want a JSON object"},
		{Line: 4, Err: `bob@example.test: field "tags" is an object or array`},
		{Line: 5, Err: `no "email" key`},
		{Line: 6, Err: `"email" is not a string`},
		{Line: 7, Err: `carol@example.test: field "first_name" contains a line break`},
		{Line: 8, Err: "invalid JSON: "},
		{Line: 9, Err: `invalid address "Eve <eve@example.test>"`},
		{Line: 10, Email: "frank@example.test", Fields: map[string]string{"price": "1.50e2"}},
		{Line: 11, Err: "two email keys"},
		{Line: 12, Err: "invalid JSON: invalid character 't' after top-level value"},
		{Line: 13, Email: "ivan@example.test", Fields: map[string]string{"city": "Kraków"}},
	})
	// .ndjson, a byte order mark, CRLF and no final newline.
	checkSteps(t, readAll(t, "testdata/bom.ndjson"), []step{
		{Line: 1, Email: "a@example.test", Fields: map[string]string{}},
		{Line: 2, Email: "b@example.test", Fields: map[string]string{}},
	})
}

func TestJSONLOverlongLineSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "long.jsonl")
	body := `{"email":"a@example.test","x":"` + strings.Repeat("y", maxLine+10) + "\"}\n" + `{"email":"b@example.test"}` + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	checkSteps(t, readAll(t, path), []step{
		{Line: 1, Err: "line longer than"},
		{Line: 2, Email: "b@example.test", Fields: map[string]string{}},
	})
}

// BenchmarkReadCSV reads a 100,000-row list end to end.
func BenchmarkReadCSV(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("email,first_name,city,plan\n")
	for i := range 100_000 {
		fmt.Fprintf(w, "user%d@d%d.example.test,Name%d,City %d,\"plan, %d\"\n", i, i%50, i, i%300, i%4)
	}
	w.Flush()
	f.Close()
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		r, err := OpenRecipients(path)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		if n != 100_000 {
			b.Fatalf("read %d rows", n)
		}
	}
}
