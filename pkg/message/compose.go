package message

import (
	"bytes"
	"io"
	"sync"
)

// Message is one recipient's rendered message as a list of pieces: its
// own bytes (headers, the lines holding merge output) and pieces shared
// by every message of the campaign (encoded static body lines, MIME
// boundaries). Writing the pieces in order gives the message; nothing of
// the template is copied. A Message from Compose is reused after
// Release, so it must not be used after that.
type Message struct {
	buf    []byte    // this message's own bytes
	segs   []segment // in order
	parts  [][]byte  // segs resolved, by Parts
	size   int
	body   bodyWriter
	hdr    bytes.Buffer // a header template's output
	fields map[string]string
}

// segment is a shared piece, or buf[from:to] when shared is nil.
type segment struct {
	shared   []byte
	from, to int
}

var messagePool = sync.Pool{New: func() any { return new(Message) }}

func getMessage() *Message {
	m := messagePool.Get().(*Message)
	m.buf, m.segs, m.parts, m.size = m.buf[:0], m.segs[:0], m.parts[:0], 0
	return m
}

// Release hands m back for reuse by a later Compose. Neither m nor the
// slices Parts returned may be used afterwards.
func (m *Message) Release() {
	if m == nil {
		return
	}
	if poisonOnRelease {
		b := m.buf[:cap(m.buf)]
		for i := range b {
			b[i] = '#'
		}
	}
	clear(m.fields)
	clear(m.parts) // the shared pieces: let a template go when its campaign does
	clear(m.segs)
	m.body.static = nil
	if cap(m.buf) > 1<<20 { // one huge message should not pin its buffer
		m.buf = nil
	}
	messagePool.Put(m)
}

// addShared appends a piece every message shares.
func (m *Message) addShared(p []byte) {
	if len(p) == 0 {
		return
	}
	m.ownUpTo(len(m.buf))
	m.segs = append(m.segs, segment{shared: p})
	m.size += len(p)
}

// ownUpTo records buf up to n as the message's next own piece.
func (m *Message) ownUpTo(n int) {
	from := 0
	for i := len(m.segs) - 1; i >= 0; i-- {
		if m.segs[i].shared == nil {
			from = m.segs[i].to
			break
		}
	}
	if n <= from {
		return
	}
	if k := len(m.segs) - 1; k >= 0 && m.segs[k].shared == nil {
		m.segs[k].to = n // still the same piece
	} else {
		m.segs = append(m.segs, segment{from: from, to: n})
	}
	m.size += n - from
}

// Len is the message's size in bytes.
func (m *Message) Len() int { return m.size }

// Parts returns the message's pieces in order. They are CRLF-canonical
// and must not be modified; the header section ends in the first one.
func (m *Message) Parts() [][]byte {
	m.parts = m.parts[:0]
	for _, s := range m.segs {
		if s.shared != nil {
			m.parts = append(m.parts, s.shared)
		} else {
			m.parts = append(m.parts, m.buf[s.from:s.to:s.to])
		}
	}
	return m.parts
}

// WriteTo writes the message to w, piece by piece.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, p := range m.Parts() {
		k, err := w.Write(p)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Bytes returns the message in one new slice of its own.
func (m *Message) Bytes() []byte {
	out := make([]byte, 0, m.size)
	for _, p := range m.Parts() {
		out = append(out, p...)
	}
	return out
}

// seg returns segment i's bytes.
func (m *Message) seg(i int) []byte {
	if s := m.segs[i]; s.shared == nil {
		return m.buf[s.from:s.to]
	}
	return m.segs[i].shared
}

// endsCRLF reports whether the message ends with CRLF (pieces are never
// empty).
func (m *Message) endsCRLF() bool {
	k := len(m.segs) - 1
	if k < 0 {
		return false
	}
	p := m.seg(k)
	if len(p) >= 2 {
		return p[len(p)-2] == '\r' && p[len(p)-1] == '\n'
	}
	if k == 0 || p[0] != '\n' {
		return false
	}
	q := m.seg(k - 1)
	return q[len(q)-1] == '\r'
}
