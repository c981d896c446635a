package streams

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// randomText draws strings with what JSON escapes or encoding/json
// rewrites: quotes, backslashes, controls, <>&, U+2028/9, invalid UTF-8,
// multi-byte and astral characters.
func randomText(rng *rand.Rand) string {
	pieces := []string{"a", "Zürich", "\"", "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "<", ">", "&",
		"\u2028", "\u2029", "\xff", "\xe2\x82", "😀", "/", " ", "user@example.test", "{", "}", ",", ":"}
	var b strings.Builder
	for n := rng.IntN(6); n > 0; n-- {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

func randomJob(rng *rand.Rand) Job {
	j := Job{ID: randomText(rng), To: randomText(rng), Lane: Lane(randomText(rng)), First: rng.Int64N(1<<45) - 1<<40}
	if rng.IntN(2) == 0 {
		j.Campaign = randomText(rng)
	}
	if n := rng.IntN(5); n > 0 || rng.IntN(4) == 0 {
		j.Fields = map[string]string{}
		for ; n > 0; n-- {
			j.Fields[randomText(rng)] = randomText(rng)
		}
	}
	if rng.IntN(2) == 0 {
		j.Line = rng.IntN(1 << 30)
	}
	if rng.IntN(2) == 0 {
		j.Attempts = rng.IntN(30) - 2
	}
	j.HasMessage = rng.IntN(3) == 0
	if rng.IntN(3) == 0 {
		j.From = randomText(rng)
	}
	if rng.IntN(8) == 0 {
		j.History = []Attempt{{At: 1, Status: "deferred", Reply: randomText(rng)}}
	}
	return j
}

// TestJobCodecMatchesEncodingJSON: encode writes json.Marshal's bytes,
// and decodeJob reads every job as json.Unmarshal does (the jobs old
// engines wrote included, whose format is this one).
func TestJobCodecMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	fast := 0
	for i := 0; i < 20000; i++ {
		j := randomJob(rng)
		want, err := json.Marshal(&j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := j.encode()
		if err != nil || got != string(want) {
			t.Fatalf("encode %#v:\n got %s %v\nwant %s", j, got, err, want)
		}
		var ref Job
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		dec, err := decodeJob(got)
		if err != nil || !reflect.DeepEqual(dec, ref) {
			t.Fatalf("decode %s:\n got %#v %v\nwant %#v", got, dec, err, ref)
		}
		if _, ok := readJob(got); ok {
			fast++
		}
	}
	if fast < 10000 { // most jobs: no History, valid UTF-8
		t.Fatalf("the fast path read only %d of 20000 jobs", fast)
	}
}

// TestReadJobDeclinesWhatItDoesNotReadExactly: inputs encode never writes
// go to encoding/json, whose reading stays the reference.
func TestReadJobDeclinesWhatItDoesNotReadExactly(t *testing.T) {
	for _, s := range []string{
		`{"id":"a","h":[{"at":1}],"to":"x","l":"marketing","t0":1}`, // History
		`{"ID":"a","to":"x","l":"marketing","t0":1}`,                // case-insensitive key
		`{"id":"a","to":"x","l":"marketing","t0":1,"extra":1}`,      // unknown key
		`{"id":null,"to":"x","l":"marketing","t0":1}`,
		`{"id":"a","to":"x","l":"marketing","t0":1.0}`,
		`{"id":"a","to":"x","l":"marketing","t0":1e3}`,
		`{"id":"a","to":"x","l":"marketing","t0":01}`,
		`{"id":"a","to":"x","l":"marketing","t0":99999999999999999999}`,
		`{"id":"\ud800","to":"x","l":"marketing","t0":1}`, // lone surrogate
		"{\"id\":\"\xff\",\"to\":\"x\",\"l\":\"marketing\",\"t0\":1}",
		`{"id":"a","f":{"a":"1"},"f":{"b":"2"},"to":"x","l":"marketing","t0":1}`, // merged by encoding/json
		`{"id":"a","to":"x","l":"marketing","t0":1} x`,
		`{"id":"a",}`,
		``, `null`, `[]`,
	} {
		if j, ok := readJob(s); ok {
			t.Errorf("readJob(%q) = %#v; want it declined", s, j)
		}
		var ref Job
		refErr := json.Unmarshal([]byte(s), &ref)
		got, err := decodeJob(s)
		if (err != nil) != (refErr != nil) || (err == nil && !reflect.DeepEqual(got, ref)) {
			t.Errorf("decodeJob(%q) = %#v, %v; encoding/json: %#v, %v", s, got, err, ref, refErr)
		}
	}
	// White space, key order and escapes encode does not write are read.
	s := " {\n\t\"to\" : \"a\\/b\\u00e9\\ud83d\\ude00\" , \"t0\":-5,\"f\":{ },\"id\":\"x\",\"m\":false,\"l\":\"marketing\" } "
	j, ok := readJob(s)
	var ref Job
	if err := json.Unmarshal([]byte(s), &ref); err != nil || !ok || !reflect.DeepEqual(j, ref) {
		t.Fatalf("readJob = %#v %v; encoding/json %#v", j, ok, ref)
	}
}

// FuzzReadJob: wherever the fast path reads a job, encoding/json reads
// the same job.
func FuzzReadJob(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		j := randomJob(rng)
		b, _ := json.Marshal(&j)
		f.Add(string(b))
	}
	f.Add(`{"id":"a","to":"x","l":"marketing","t0":1,"f":{"a":"\u00e9"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		j, ok := readJob(s)
		if !ok {
			return
		}
		var ref Job
		if err := json.Unmarshal([]byte(s), &ref); err != nil || !reflect.DeepEqual(j, ref) {
			t.Fatalf("readJob(%q) = %#v; encoding/json: %#v, %v", s, j, ref, err)
		}
	})
}

func BenchmarkJobCodec(b *testing.B) {
	j := Job{ID: "small/12345", Campaign: "small", To: "user12345@example.test", Lane: Marketing, Line: 12345, First: 1796065951000,
		Fields: map[string]string{"first_name": "Name12345", "city": "Zürich"}}
	raw, _ := j.encode()
	b.Run("decode/fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeJob(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			var j Job
			if err := json.Unmarshal([]byte(raw), &j); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := j.encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(&j); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRecordEncodeMatchesEncodingJSON: Record.Encode's fast path writes
// json.Marshal's bytes (the settle scripts match the status at its start,
// readers decode it with encoding/json).
func TestRecordEncodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2))
	text := func() string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return randomText(rng)
	}
	num := func() int64 { return []int64{0, 0, 1, -7, 1 << 41}[rng.IntN(5)] }
	for i := 0; i < 5000; i++ {
		r := Record{Status: text(), Code: int(num()), Enhanced: text(), Reply: text(), Reason: text(), Host: text(),
			Attempts: int(num()), At: num(), Line: int(num()), JobID: text(), Src: text(), Prov: text()}
		if rng.IntN(8) == 0 {
			r.Earlier = []Attempt{{At: 1, Status: "deferred", Reply: text()}}
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Encode(); got != string(want) {
			t.Fatalf("Encode(%+v)\n got %s\nwant %s", r, got, want)
		}
	}
}
