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
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			return bad("", "invalid JSON: "+err.Error())
		}
		return r.jsonlRecord(obj, s.line)
	}
}

func (r *Reader) jsonlRecord(obj map[string]json.RawMessage, line int) (Recipient, error) {
	bad := func(email, reason string) (Recipient, error) {
		return Recipient{}, &RecipientError{Path: r.path, Line: line, Email: email, Reason: reason}
	}
	emailKey := ""
	for k := range obj {
		if strings.EqualFold(strings.TrimSpace(k), "email") {
			if emailKey != "" {
				return bad("", fmt.Sprintf("two email keys (%q and %q)", emailKey, k))
			}
			emailKey = k
		}
	}
	if emailKey == "" {
		return bad("", `no "email" key`)
	}
	var raw string
	if err := json.Unmarshal(obj[emailKey], &raw); err != nil {
		return bad("", fmt.Sprintf("%q is not a string", emailKey))
	}
	email, err := address.Normalize(raw)
	if err != nil {
		return bad(raw, err.Error())
	}
	fields := r.newFields(len(obj) - 1)
	for k, v := range obj {
		if k == emailKey {
			continue
		}
		s, err := scalar(v)
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
func scalar(v json.RawMessage) (string, error) {
	switch v[0] {
	case '"':
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
