package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestFeedbackClassify(t *testing.T) {
	t.Parallel()
	dir := "../../pkg/feedback/testdata/"
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"feedback", "classify", "--json", dir + "dsn.eml", dir + "arf.eml"}, &out, &errb)
	want := `{"file":"` + dir + `dsn.eml","recipient":"alice@example.test","kind":"hard","reason":"user-unknown","status":"5.1.1","code":550}
{"file":"` + dir + `dsn.eml","recipient":"bob@example.test","kind":"soft","reason":"auth-failure","status":"5.7.26","code":550}
{"file":"` + dir + `dsn.eml","recipient":"carol@example.test","kind":"soft","reason":"mailbox-full","status":"4.2.2","code":452}
{"file":"` + dir + `arf.eml","recipient":"dave@provider.example","kind":"complaint","reason":"complaint","status":"","code":0}
`
	if code != 0 || out.String() != want {
		t.Errorf("exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errb.String(), out.String(), want)
	}
	out.Reset()
	if code := run(context.Background(), []string{"feedback", "classify", dir + "exchange.eml"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "frank@corp.example  hard  user-unknown  5.1.10  550") {
		t.Errorf("table: exit %d\n%s", code, out.String())
	}
	for _, args := range [][]string{{"feedback"}, {"feedback", "frob"}, {"feedback", "classify"}} {
		errb.Reset()
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	if code := run(context.Background(), []string{"feedback", "classify", "/nonexistent.eml"}, &out, &errb); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}
