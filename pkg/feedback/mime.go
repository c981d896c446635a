package feedback

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
)

// maxDepth bounds how deep multiparts nest before the rest is ignored.
const maxDepth = 8

// part is one leaf of a message's MIME tree, its body decoded.
type part struct {
	mediaType string // lower case
	header    textproto.MIMEHeader
	body      []byte
}

// readHeader reads a header block leniently, the way bounces need it:
// unlike net/textproto's reader it skips lines that are not fields (an
// mbox "From " line, garbage) instead of failing, and accepts lines
// folded with any white space. It returns the header and what follows
// the blank line that ends it.
func readHeader(b []byte) (textproto.MIMEHeader, []byte) {
	h := textproto.MIMEHeader{}
	var key string
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\n"))
		l := strings.TrimRight(string(line), "\r")
		if strings.TrimSpace(l) == "" {
			return h, rest
		}
		b = rest
		if l[0] == ' ' || l[0] == '\t' {
			if key != "" {
				v := h[key]
				v[len(v)-1] += " " + strings.TrimSpace(l)
			}
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			key = ""
			continue
		}
		key = textproto.CanonicalMIMEHeaderKey(k)
		h[key] = append(h[key], strings.TrimSpace(v))
	}
	return h, nil
}

// walk appends the leaves of a MIME entity to out, decoding
// Content-Transfer-Encoding. A message/rfc822 part is a leaf: it is the
// original message, not part of the report. A broken multipart yields the
// parts read before the break.
func walk(h textproto.MIMEHeader, body []byte, depth int, out *[]part) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(h.Get("Content-Type"), ";", 2)[0]))
	}
	if mt == "" {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") && depth < maxDepth {
		boundary := params["boundary"]
		if boundary == "" {
			boundary = sniffBoundary(body)
		}
		if boundary != "" {
			n := len(*out)
			mr := multipart.NewReader(bytes.NewReader(body), boundary)
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					break
				}
				raw, err := io.ReadAll(p)
				if err != nil && len(raw) == 0 {
					break
				}
				walk(textproto.MIMEHeader(p.Header), raw, depth+1, out)
			}
			if len(*out) > n {
				return
			}
		}
		mt = "text/plain" // no parts found: read it as text
	}
	*out = append(*out, part{mediaType: mt, header: h, body: decode(h.Get("Content-Transfer-Encoding"), body)})
}

// sniffBoundary guesses the boundary of a multipart whose Content-Type
// lost it: the first line that looks like one.
func sniffBoundary(body []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "--") && len(l) > 4 && !strings.ContainsAny(l, " \t") && !strings.HasSuffix(l, "--") {
			return l[2:]
		}
	}
	return ""
}

// decode undoes a Content-Transfer-Encoding, keeping what it can of a
// damaged body.
func decode(cte string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		clean = bytes.TrimRight(clean, "=")
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, _ := base64.RawStdEncoding.Decode(out, clean)
		return out[:n]
	case "quoted-printable":
		out, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if len(out) > 0 {
			return out
		}
	}
	return body
}

// headerText decodes RFC 2047 encoded words in a header value, keeping
// the raw value when a charset is unknown.
func headerText(v string) string {
	d := mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}
	if s, err := d.DecodeHeader(v); err == nil {
		return s
	}
	return v
}
