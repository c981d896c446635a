package streams

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sluice-mta/sluice/pkg/jsonenc"
)

// The job codec's fast paths: a job is read and written for every
// delivery (twice read: by the router from its lane, by the line server
// from its line), and encoding/json's reflection was ~10 µs of each.
// The format is unchanged — the JSON encoding/json writes for Job, which
// Lua scripts read too (cjson) — so jobs written by older engines are
// read as before. appendJob writes exactly json.Marshal's bytes;
// readJob reads that shape and says !ok for anything else (History,
// unknown keys, null, non-integers, odd escapes), which then goes to
// encoding/json: the two agree wherever the fast path answers
// (TestJobCodecMatchesEncodingJSON, FuzzReadJob).

// appendJob appends j as json.Marshal encodes it; ok is false for a job
// with History, which the caller encodes with encoding/json.
func appendJob(b []byte, j *Job) ([]byte, bool) {
	if len(j.History) > 0 {
		return b, false
	}
	b = append(b, `{"id":`...)
	b = jsonenc.AppendString(b, j.ID)
	if j.Campaign != "" {
		b = append(b, `,"c":`...)
		b = jsonenc.AppendString(b, j.Campaign)
	}
	b = append(b, `,"to":`...)
	b = jsonenc.AppendString(b, j.To)
	if len(j.Fields) > 0 {
		b = appendFields(append(b, `,"f":`...), j.Fields)
	}
	b = append(b, `,"l":`...)
	b = jsonenc.AppendString(b, string(j.Lane))
	if j.Line != 0 {
		b = strconv.AppendInt(append(b, `,"ln":`...), int64(j.Line), 10)
	}
	if j.Attempts != 0 {
		b = strconv.AppendInt(append(b, `,"n":`...), int64(j.Attempts), 10)
	}
	b = strconv.AppendInt(append(b, `,"t0":`...), j.First, 10)
	if j.HasMessage {
		b = append(b, `,"m":true`...)
	}
	if j.From != "" {
		b = append(b, `,"from":`...)
		b = jsonenc.AppendString(b, j.From)
	}
	return append(b, '}'), true
}

// appendFields writes a map with its keys sorted, as encoding/json does.
func appendFields(b []byte, f map[string]string) []byte {
	var small [16]string
	keys := small[:0]
	for k := range f {
		keys = append(keys, k)
	}
	sortStrings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, k)
		b = append(b, ':')
		b = jsonenc.AppendString(b, f[k])
	}
	return append(b, '}')
}

// sortStrings is an insertion sort: a job has a handful of fields.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for k := i; k > 0 && s[k] < s[k-1]; k-- {
			s[k], s[k-1] = s[k-1], s[k]
		}
	}
}

// readJob reads a job in the shape appendJob writes (keys in any order,
// white space anywhere JSON allows it); ok is false for anything it does
// not read exactly as encoding/json would.
func readJob(s string) (j Job, ok bool) {
	r := jsonReader{s: s}
	if !r.next('{') {
		return j, false
	}
	if r.peek() == '}' {
		r.i++
		return j, r.end()
	}
	seenFields := false
	for {
		key, ok := r.str()
		if !ok || !r.next(':') {
			return j, false
		}
		switch key {
		case "id":
			j.ID, ok = r.str()
		case "c":
			j.Campaign, ok = r.str()
		case "to":
			j.To, ok = r.str()
		case "f":
			if seenFields { // encoding/json would merge the two objects
				return j, false
			}
			seenFields = true
			j.Fields, ok = r.fields()
		case "l":
			j.Lane, ok = r.lane()
		case "ln":
			j.Line, ok = r.int()
		case "n":
			j.Attempts, ok = r.int()
		case "t0":
			j.First, ok = r.int64()
		case "m":
			j.HasMessage, ok = r.boolean()
		case "from":
			j.From, ok = r.str()
		default: // "h" (History) and anything unknown
			return j, false
		}
		if !ok {
			return j, false
		}
		r.ws()
		switch r.peek() {
		case ',':
			r.i++
			continue
		case '}':
			r.i++
			return j, r.end()
		}
		return j, false
	}
}

// jsonReader reads JSON tokens from s.
type jsonReader struct {
	s string
	i int
}

func (r *jsonReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *jsonReader) peek() byte {
	r.ws()
	if r.i < len(r.s) {
		return r.s[r.i]
	}
	return 0
}

// next consumes c after white space.
func (r *jsonReader) next(c byte) bool {
	if r.peek() != c {
		return false
	}
	r.i++
	return true
}

// end reports whether only white space is left.
func (r *jsonReader) end() bool {
	r.ws()
	return r.i == len(r.s)
}

// str reads a string. Without escapes it is a substring of s (no copy).
func (r *jsonReader) str() (string, bool) {
	if !r.next('"') {
		return "", false
	}
	start := r.i
	for i := start; i < len(r.s); i++ {
		switch c := r.s[i]; {
		case c == '"':
			v := r.s[start:i]
			if !utf8.ValidString(v) {
				return "", false // encoding/json would make it U+FFFD
			}
			r.i = i + 1
			return v, true
		case c == '\\':
			return r.unescape(start)
		case c < 0x20:
			return "", false
		}
	}
	return "", false
}

// unescape reads the rest of a string that holds escapes.
func (r *jsonReader) unescape(start int) (string, bool) {
	var b strings.Builder
	i := start
	for i < len(r.s) {
		c := r.s[i]
		switch {
		case c == '"':
			v := b.String()
			if !utf8.ValidString(v) {
				return "", false
			}
			r.i = i + 1
			return v, true
		case c < 0x20:
			return "", false
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(r.s) {
			return "", false
		}
		switch e := r.s[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			c1, ok := hex4(r.s, i+2)
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(rune(c1)) {
				c2, ok := hex4(r.s, i+8)
				dec := utf16.DecodeRune(rune(c1), rune(c2))
				if !ok || r.s[i+6] != '\\' || r.s[i+7] != 'u' || dec == utf8.RuneError {
					return "", false // a lone surrogate: leave it to encoding/json
				}
				b.WriteRune(dec)
				i += 12
				continue
			}
			b.WriteRune(rune(c1))
			i += 6
			continue
		default:
			return "", false
		}
		i += 2
	}
	return "", false
}

// hex4 reads four hex digits at s[i:].
func hex4(s string, i int) (int, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s[i:i+4], 16, 32)
	return int(n), err == nil
}

func (r *jsonReader) lane() (Lane, bool) {
	s, ok := r.str()
	return Lane(s), ok
}

// int reads an integer that fits an int.
func (r *jsonReader) int() (int, bool) {
	n, ok := r.int64()
	return int(n), ok && int64(int(n)) == n
}

// int64 reads an integer: digits, with an optional minus sign.
func (r *jsonReader) int64() (int64, bool) {
	r.ws()
	start := r.i
	if r.i < len(r.s) && r.s[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.s) && r.s[r.i] >= '0' && r.s[r.i] <= '9' {
		r.i++
	}
	if r.i == digits || (r.s[digits] == '0' && r.i-digits > 1) {
		return 0, false
	}
	if r.i < len(r.s) && (r.s[r.i] == '.' || r.s[r.i] == 'e' || r.s[r.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(r.s[start:r.i], 10, 64)
	return n, err == nil
}

func (r *jsonReader) boolean() (bool, bool) {
	r.ws()
	switch {
	case strings.HasPrefix(r.s[r.i:], "true"):
		r.i += 4
		return true, true
	case strings.HasPrefix(r.s[r.i:], "false"):
		r.i += 5
		return false, true
	}
	return false, false
}

// fields reads an object of strings (never nil, as encoding/json makes it).
func (r *jsonReader) fields() (map[string]string, bool) {
	if !r.next('{') {
		return nil, false
	}
	m := make(map[string]string, 4)
	if r.peek() == '}' {
		r.i++
		return m, true
	}
	for {
		k, ok := r.str()
		if !ok || !r.next(':') {
			return nil, false
		}
		v, ok := r.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return m, true
		default:
			return nil, false
		}
	}
}
