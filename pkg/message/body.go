package message

import (
	"bytes"
	"mime/quotedprintable"
	"text/template/parse"
)

// A body template is mostly text without merge fields. text/template
// writes each text node of the parse tree with one Write of the node's
// own bytes, the same slice for every recipient, so those writes are told
// apart by where their bytes live: the whole lines inside a text node are
// quoted-printable encoded once, when the campaign is compiled, and every
// message shares that encoding. Only the lines that hold merge output
// are encoded per recipient.
//
// Quoted-printable is line-local: the encoder's state is empty after each
// line break, so the encoding of whole lines does not depend on what came
// before them and the pieces join into exactly the bytes that encoding
// the whole body at once gives (TestStaticEncodingMatches checks it).

// staticText is one text node, split at its first and last line break.
type staticText struct {
	n    int    // len(node.Text)
	head []byte // up to and including the first LF: ends the line before
	qp   []byte // the whole lines after it, encoded
	tail []byte // after the last LF: starts the next line
}

// staticTexts finds a text node's staticText by the address of its first
// byte.
type staticTexts map[*byte]*staticText

// collect adds the text nodes of trees that hold a line break (nodes
// without one are a part of a single line and gain nothing).
func (s staticTexts) collect(trees ...*parse.Tree) {
	for _, t := range trees {
		if t != nil && t.Root != nil {
			s.walk(t.Root)
		}
	}
}

func (s staticTexts) walk(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			s.walk(c)
		}
	case *parse.TextNode:
		s.add(n.Text)
	case *parse.IfNode:
		s.walk(n.List)
		s.walk(n.ElseList)
	case *parse.RangeNode:
		s.walk(n.List)
		s.walk(n.ElseList)
	case *parse.WithNode:
		s.walk(n.List)
		s.walk(n.ElseList)
	}
}

func (s staticTexts) add(text []byte) {
	first := bytes.IndexByte(text, '\n')
	if first < 0 {
		return
	}
	last := bytes.LastIndexByte(text, '\n')
	st := &staticText{n: len(text), head: text[:first+1], tail: text[last+1:]}
	st.qp = appendQP(nil, text[first+1:last+1])
	s[&text[0]] = st
}

// lookup returns p's staticText when p is a collected text node.
func (s staticTexts) lookup(p []byte) *staticText {
	if len(p) == 0 || len(s) == 0 {
		return nil
	}
	if st := s[&p[0]]; st != nil && st.n == len(p) {
		return st
	}
	return nil
}

// bodyWriter receives a body template's output and adds it to a Message
// encoded: the current line(s) of merge output are kept in line and
// encoded when a static text node ends them; the node's whole lines are
// added as the shared, ready encoding.
type bodyWriter struct {
	static staticTexts
	m      *Message
	line   []byte // output since the last shared piece, not yet encoded
	qp     *quotedprintable.Writer
	out    appender // what qp writes to: m.buf, borrowed while encoding
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	st := w.static.lookup(p)
	if st == nil {
		w.line = append(w.line, p...)
		return len(p), nil
	}
	w.line = append(w.line, st.head...)
	w.flush()
	w.m.addShared(st.qp)
	w.line = append(w.line[:0], st.tail...)
	return len(p), nil
}

// WriteString is Write for merge output, which is never a static text.
func (w *bodyWriter) WriteString(s string) (int, error) {
	w.line = append(w.line, s...)
	return len(s), nil
}

// flush encodes line into the message; at the end of the body it also
// encodes trailing white space, as Close does (the encoder is then empty:
// every flush but the last ends at a line break).
func (w *bodyWriter) flush() {
	if len(w.line) == 0 {
		return
	}
	src := w.line
	if bytes.IndexByte(src, '\r') >= 0 {
		src = foldCR(src)
	}
	w.out = w.m.buf
	_, _ = w.qp.Write(src) // appending to a slice cannot fail
	_ = w.qp.Close()
	w.m.buf = w.out
	w.m.ownUpTo(len(w.m.buf))
	w.line = w.line[:0]
}

// reset prepares w to receive one body for m.
func (w *bodyWriter) reset(static staticTexts, m *Message) {
	w.static, w.m, w.line = static, m, w.line[:0]
	if w.qp == nil {
		w.qp = quotedprintable.NewWriter(&w.out)
	}
}
