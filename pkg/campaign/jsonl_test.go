package campaign

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// checkFlatObject fails when flatObject reads b other than encoding/json:
// every object it accepts must be valid JSON with the same keys, values
// and merge-field texts.
func checkFlatObject(t *testing.T, b []byte) bool {
	t.Helper()
	kvs, ok := flatObject(b, nil)
	if !ok {
		return false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatalf("flatObject read %q, encoding/json refuses it: %v", b, err)
	}
	if len(obj) != len(kvs) {
		t.Fatalf("flatObject read %d keys of %q, encoding/json %d", len(kvs), b, len(obj))
	}
	for _, kv := range kvs {
		v, found := obj[kv.key]
		if !found || string(v) != string(kv.val) {
			t.Fatalf("%q: key %q: flatObject %q, encoding/json %q", b, kv.key, kv.val, v)
		}
		fast, err := scalar(kv.val)
		var want string
		if v[0] == '"' {
			if json.Unmarshal(v, &want) != nil {
				t.Fatalf("%q: %q", b, v)
			}
		} else if v[0] != 'n' {
			want = string(v)
		}
		if err != nil || fast != want {
			t.Fatalf("%q: key %q: scalar %q %v, want %q", b, kv.key, fast, err, want)
		}
	}
	return true
}

func TestFlatObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		line string
		fast bool // flatObject reads it (else it leaves it to encoding/json)
	}{
		{`{"email":"a@example.test","first_name":"Ann","city":"Zürich"}`, true},
		{` { "email" : "a@b.test" , "n" : -12.5e+3, "t": true, "f": false, "z": null, "e": "" } `, true},
		{`{}`, true},
		{`{"n":0}`, true},
		{`{"email":"a@b.test","q":"say \"hi\""}`, false}, // an escape
		{`{"email":"a@b.test","tags":["x"]}`, false},
		{`{"email":"a@b.test","o":{"x":1}}`, false},
		{`{"email":"a@b.test","email":"b@b.test"}`, false}, // the same key twice
		{`{"n":01}`, false},
		{`{"n":1.}`, false},
		{`{"n":-}`, false},
		{`{"n":1e}`, false},
		{`{"t":tru}`, false},
		{`{"a":1,}`, false},
		{`{"a":1} x`, false},
		{`{"a" 1}`, false},
		{"{\"a\":\"tab\there\"}", false},
		{`{"a":"1"`, false},
	} {
		if got := checkFlatObject(t, []byte(tc.line)); got != tc.fast {
			t.Errorf("flatObject(%s): read %v, want %v", tc.line, got, tc.fast)
		}
	}
}

func FuzzFlatObject(f *testing.F) {
	f.Add([]byte(`{"email":"a@b.test","n":-1.5E-2,"x":null,"b":false}`))
	f.Add([]byte(`{"a":"\u00e9"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if utf8.Valid(b) { // as nextJSONL checks first
			checkFlatObject(t, b)
		}
	})
}
