package deliver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/text"
)

// conn is one SMTP client session. sluice speaks the client side itself
// rather than through go-smtp's Client: it needs PIPELINING (RFC 2920) so
// RSET, MAIL, RCPT and DATA cost one round trip, RSET without a second
// EHLO, a STARTTLS with its own EHLO name, and per-command deadlines that
// a context can cut short.
type conn struct {
	raw  net.Conn // TCP; deadlines are set here, also under TLS
	nc   net.Conn // raw, or the TLS connection over it
	br   *bufio.Reader
	bw   *bufio.Writer
	cfg  *SMTPConfig
	key  string // pool key, Source.poolKey(Host.Addr())
	host string // host name reported in outcomes
	ext  map[string]string
	tls  bool

	sent      int       // transactions begun (MAIL accepted)
	idleSince time.Time // set while pooled
	slots     Slots     // the connection slot it holds (nil: none); freed at close

	mu       sync.Mutex // guards the fields below against context.AfterFunc
	ctx      context.Context
	gen      int
	canceled bool
	rdl, wdl time.Time // the read and write deadlines set last

	recent     [4]string // reply lines seen last (lineText)
	nextRecent int

	wtimeout  time.Duration // deadline for each write to the socket
	closeOnce sync.Once
	onClose   func()
}

// aLongTimeAgo is a deadline in the past: it fails pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

func newConn(raw net.Conn, cfg *SMTPConfig, h Host, key string, onClose func()) *conn {
	c := &conn{raw: raw, nc: raw, cfg: cfg, key: key, host: h.Name, onClose: onClose,
		wtimeout: cfg.CommandTimeout}
	c.br = bufio.NewReaderSize(raw, 4096)
	c.bw = bufio.NewWriterSize(writerFunc(c.write), 32<<10)
	return c
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// write sends p under a fresh write deadline, so a slow but moving
// receiver is fine and a stuck one is not (RFC 5321 §4.5.3.2.5, 3 min per
// data block).
func (c *conn) write(p []byte) (int, error) {
	if err := c.deadline(writeDeadline, c.wtimeout); err != nil {
		return 0, err
	}
	return c.nc.Write(p)
}

// bind lets ctx interrupt any I/O on c until stop is called. Deadlines
// are set under mu so a cancellation can never be overwritten by the next
// command's deadline.
func (c *conn) bind(ctx context.Context) (stop func()) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.ctx, c.canceled = ctx, ctx.Err() != nil
	c.mu.Unlock()
	release := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gen == gen {
			c.canceled = true
			c.rdl, c.wdl = aLongTimeAgo, aLongTimeAgo
			_ = c.raw.SetDeadline(aLongTimeAgo)
		}
	})
	return func() {
		release()
		c.mu.Lock()
		c.gen++
		c.ctx = nil
		c.mu.Unlock()
	}
}

// The deadlines deadline sets.
const (
	readDeadline = iota
	writeDeadline
	bothDeadlines
)

// deadline sets a read or write deadline (or both) d from now, or the
// context's deadline when that comes first. A deadline set already at
// most deadlineSlack(d) earlier is kept: as good, and no timer to move
// (a message's transaction asks five times within microseconds).
func (c *conn) deadline(which int, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.canceled {
		return c.ctxErr()
	}
	t := time.Now().Add(d)
	if c.ctx != nil {
		if dl, ok := c.ctx.Deadline(); ok && dl.Before(t) {
			t = dl
		}
	}
	switch which {
	case readDeadline:
		return setDeadline(&c.rdl, t, d, c.raw.SetReadDeadline)
	case writeDeadline:
		return setDeadline(&c.wdl, t, d, c.raw.SetWriteDeadline)
	}
	c.rdl, c.wdl = t, t
	return c.raw.SetDeadline(t)
}

// setDeadline sets t with set unless *last, the deadline set before, is
// not later than t and within deadlineSlack(d) of it.
func setDeadline(last *time.Time, t time.Time, d time.Duration, set func(time.Time) error) error {
	if !last.IsZero() && !last.After(t) && t.Sub(*last) < deadlineSlack(d) {
		return nil
	}
	*last = t
	return set(t)
}

// deadlineSlack is how much earlier than asked a kept deadline may be: a
// hundredth of the timeout, at most a second.
func deadlineSlack(d time.Duration) time.Duration { return min(d/100, time.Second) }

func (c *conn) ctxErr() error {
	if c.ctx != nil && c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	return context.Canceled
}

// reply is one SMTP reply (RFC 5321 §4.2), possibly multi-line.
type reply struct {
	code int
	enh  string // RFC 3463 code from the first line, "" when absent
	text string // the lines joined by "\n", codes stripped
}

func (r reply) String() string {
	return strings.TrimSpace(fmt.Sprintf("%d %s %s", r.code, r.enh, r.text))
}

// outcome classifies r as the answer at stage.
func (r reply) outcome(stage outcome.Stage, host string) outcome.Outcome {
	o := stageOutcome(Classify(r.code, r.enh, r.text), stage)
	o.Host = host
	return o
}

const maxReplyLines = 100

// readReply reads one reply, waiting at most timeout for it.
func (c *conn) readReply(timeout time.Duration) (reply, error) {
	if err := c.deadline(readDeadline, timeout); err != nil {
		return reply{}, err
	}
	var r reply
	var first string
	var lines []string // from the second line on; most replies have one
	for n := 0; ; n++ {
		b, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return r, fmt.Errorf("reply line longer than %d bytes", c.br.Size())
		}
		if err != nil {
			return r, err
		}
		line := c.lineText(bytes.TrimRight(b, "\r\n"))
		if len(line) < 3 || !digits(line[:3], 3) || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return r, fmt.Errorf("malformed reply line %q", text.Clip(line, 80))
		}
		code, _ := strconv.Atoi(line[:3])
		if n == 0 {
			r.code = code
		} else if code != r.code {
			return r, fmt.Errorf("reply code changed from %d to %d within one reply", r.code, code)
		}
		rest := ""
		if len(line) > 4 {
			rest = line[4:]
		}
		switch {
		case n == 0:
			first = rest
		case n == 1:
			lines = append(make([]string, 0, 8), first, rest)
		default:
			lines = append(lines, rest)
		}
		if len(line) == 3 || line[3] == ' ' {
			break
		}
		if n >= maxReplyLines {
			return r, fmt.Errorf("reply longer than %d lines", maxReplyLines)
		}
	}
	// RFC 2034 §4: the enhanced code opens every line; keep it once.
	r.enh = leadingEnhanced(first)
	if lines == nil {
		r.text = first
		if r.enh != "" {
			r.text = strings.TrimPrefix(first[len(r.enh):], " ")
		}
		return r, nil
	}
	if r.enh != "" {
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(strings.TrimPrefix(l, r.enh), " ")
		}
	}
	r.text = strings.Join(lines, "\n")
	return r, nil
}

// lineText is b as a string, the same string as for an earlier line of
// the session when b repeats one of the last few: a receiver answers
// every transaction with the same lines, four per message.
func (c *conn) lineText(b []byte) string {
	for _, s := range c.recent {
		if s == string(b) { // compared without a copy
			return s
		}
	}
	s := string(b)
	c.recent[c.nextRecent] = s
	c.nextRecent = (c.nextRecent + 1) % len(c.recent)
	return s
}

// cmd sends one command and reads its reply.
func (c *conn) cmd(timeout time.Duration, line string) (reply, error) {
	if err := c.send(line); err != nil {
		return reply{}, err
	}
	return c.readReply(timeout)
}

// send writes command lines and flushes them as one segment.
func (c *conn) send(lines ...string) error {
	for _, l := range lines {
		_, _ = c.bw.WriteString(l)
		_, _ = c.bw.Write(crlf)
	}
	return c.bw.Flush()
}

func (c *conn) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// sizeLimit is the advertised SIZE (RFC 1870), 0 when none.
func (c *conn) sizeLimit() int64 {
	n, err := strconv.ParseInt(c.ext["SIZE"], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// close drops the connection without a word, as for a broken session.
// It closes the TCP connection under any TLS: a TLS close_notify could
// block on a receiver that stopped reading, and SMTP needs none (QUIT
// frames the session).
func (c *conn) close() {
	c.closeOnce.Do(func() {
		_ = c.raw.Close()
		if c.onClose != nil {
			c.onClose()
		}
		if c.slots != nil {
			c.slots.Release()
		}
	})
}

// quit ends a healthy session politely (RFC 5321 §4.1.1.10) and closes it.
func (c *conn) quit() {
	t := min(c.cfg.CommandTimeout, 5*time.Second)
	c.wtimeout = t
	if err := c.send("QUIT"); err == nil {
		if _, err := c.readReply(t); err == nil {
			// The receiver closes after its 221: until then it still
			// counts the session, so its slot is not free before.
			if c.deadline(readDeadline, t) == nil {
				_, _ = io.Copy(io.Discard, c.br)
			}
		}
	}
	c.close()
}
