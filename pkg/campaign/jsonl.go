package campaign

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/sluice-mta/sluice/pkg/address"
)

// maxLine bounds one JSONL record; a longer line is reported and skipped
// rather than read into memory whole.
const maxLine = 1 << 20

type jsonlState struct {
	br   *bufio.Reader
	line int
	buf  []byte
	kvs  []jsonKV // the last record's, reused
}

func (r *Reader) openJSONL(br *bufio.Reader) {
	s := &jsonlState{br: br}
	r.next = func() (Recipient, error) { return r.nextJSONL(s) }
}

// readLine returns the next physical line without its terminator; long
// reports a line over maxLine (consumed, not returned).
func (s *jsonlState) readLine() (line []byte, long bool, err error) {
	s.buf = s.buf[:0]
	for {
		frag, err := s.br.ReadSlice('\n')
		if len(s.buf)+len(frag) > maxLine {
			long = true
		} else {
			s.buf = append(s.buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && (len(s.buf) > 0 || long) {
			err = nil // last line without a newline
		}
		return s.buf, long, err
	}
}

func (r *Reader) nextJSONL(s *jsonlState) (Recipient, error) {
	for {
		b, long, err := s.readLine()
		if err != nil {
			return Recipient{}, err
		}
		s.line++
		bad := func(email, reason string) (Recipient, error) {
			return Recipient{}, &RecipientError{Path: r.path, Line: s.line, Email: email, Reason: reason}
		}
		if long {
			return bad("", fmt.Sprintf("line longer than %d bytes", maxLine))
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue // blank lines separate nothing; skip them
		}
		if !utf8.Valid(b) {
			return bad("", "not valid UTF-8 (save the file as UTF-8)")
		}
		if b[0] != '{' {
			return bad("", "want a JSON object")
		}
		kvs, ok := flatObject(b, s.kvs[:0])
		if !ok { // not the plain shape: encoding/json reads it, and says what is wrong
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(b, &obj); err != nil {
				return bad("", "invalid JSON: "+err.Error())
			}
			kvs = kvs[:0] // what flatObject read before it gave up
			for k, v := range obj {
				kvs = append(kvs, jsonKV{k, v})
			}
		}
		s.kvs = kvs
		return r.jsonlRecord(kvs, s.line)
	}
}

// jsonKV is one key of a JSONL record and its value, as written.
type jsonKV struct {
	key string
	val []byte
}

func (r *Reader) jsonlRecord(obj []jsonKV, line int) (Recipient, error) {
	bad := func(email, reason string) (Recipient, error) {
		return Recipient{}, &RecipientError{Path: r.path, Line: line, Email: email, Reason: reason}
	}
	emailAt := -1
	for i, kv := range obj {
		if strings.EqualFold(strings.TrimSpace(kv.key), "email") {
			if emailAt >= 0 {
				return bad("", fmt.Sprintf("two email keys (%q and %q)", obj[emailAt].key, kv.key))
			}
			emailAt = i
		}
	}
	if emailAt < 0 {
		return bad("", `no "email" key`)
	}
	emailKey, v := obj[emailAt].key, obj[emailAt].val
	if v[0] != '"' {
		return bad("", fmt.Sprintf("%q is not a string", emailKey))
	}
	raw, err := scalar(v)
	if err != nil {
		return bad("", fmt.Sprintf("%q is not a string", emailKey))
	}
	email, err := address.Normalize(raw)
	if err != nil {
		return bad(raw, err.Error())
	}
	fields := r.newFields(len(obj) - 1)
	for i, kv := range obj {
		if i == emailAt {
			continue
		}
		k := kv.key
		s, err := scalar(kv.val)
		if err != nil {
			return bad(raw, fmt.Sprintf("%s: field %q %v", email, k, err))
		}
		if reason := checkField(k, s); reason != "" {
			return bad(raw, email+": "+reason)
		}
		fields[k] = s
	}
	return Recipient{Line: line, Email: email, Fields: fields}, nil
}

// scalar turns a JSON scalar into its merge-field text: strings as they
// are, numbers and booleans as written, null as empty (so a template can
// still test it; a missing key would fail the render).
func scalar(v []byte) (string, error) {
	switch v[0] {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			// Valid JSON (flatObject or encoding/json said so) of valid
			// UTF-8: without escapes, the text is what is quoted.
			return string(v[1 : len(v)-1]), nil
		}
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case '{', '[':
		return "", errors.New("is an object or array; merge fields must be strings, numbers or booleans")
	case 'n':
		return "", nil
	default: // number, true, false: already validated by Unmarshal
		return string(v), nil
	}
}

// flatObject reads b as a JSON object whose values are strings without
// escapes, numbers, booleans or null, each key once — what nearly every
// list holds — into kvs, in one pass and without encoding/json's
// reflection (most of a JSONL row's cost). b is valid UTF-8 (checked
// before). ok is false for anything else, valid or not: encoding/json
// then reads it, and reports what is wrong.
func flatObject(b []byte, kvs []jsonKV) (_ []jsonKV, ok bool) {
	i := skipWS(b, 0)
	if i == len(b) || b[i] != '{' {
		return kvs, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return kvs, skipWS(b, i+1) == len(b)
	}
	for {
		end, ok := plainString(b, i)
		if !ok {
			return kvs, false
		}
		key := b[i+1 : end-1]
		for _, kv := range kvs {
			if kv.key == string(key) {
				return kvs, false // encoding/json keeps the last one; let it
			}
		}
		if i = skipWS(b, end); i == len(b) || b[i] != ':' {
			return kvs, false
		}
		i = skipWS(b, i+1)
		if end, ok = scalarEnd(b, i); !ok {
			return kvs, false
		}
		kvs = append(kvs, jsonKV{string(key), b[i:end]})
		if i = skipWS(b, end); i == len(b) {
			return kvs, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return kvs, skipWS(b, i+1) == len(b)
		default:
			return kvs, false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString is the end (past the closing quote) of the string at b[i]
// when it has no escape and no control character.
func plainString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for k := i + 1; k < len(b); k++ {
		switch c := b[k]; {
		case c == '"':
			return k + 1, true
		case c == '\\' || c < 0x20:
			return 0, false
		}
	}
	return 0, false
}

// scalarEnd is the end of the plain string, number, true, false or null
// at b[i].
func scalarEnd(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return plainString(b, i)
	case 't', 'f', 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(b[i:], []byte(lit)) {
				return i + len(lit), true
			}
		}
		return 0, false
	}
	return numberEnd(b, i)
}

// numberEnd is the end of the JSON number at b[i]: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func numberEnd(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		k := digits(i + 1)
		if k == i+1 {
			return 0, false
		}
		i = k
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		k := digits(i)
		if k == i {
			return 0, false
		}
		i = k
	}
	return i, true
}
