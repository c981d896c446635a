// Package smtptest runs an in-process go-smtp receiver on loopback with
// scripted replies, and records every message it accepts. Tests use it as
// the far end of real SMTP sessions over TCP.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/mxsim"
)

// Message is one accepted message.
type Message struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session had done STARTTLS
	Helo string // the client's EHLO name
	Peer string // the client's address, "ip:port" (the source it sent from)
	Conn int    // sequence number of the session that carried it
	// MAIL FROM parameters the client sent.
	Size int64  // SIZE=, 0 when absent
	Body string // BODY=, "" when absent
	UTF8 bool   // SMTPUTF8
}

// Options script the receiver. A hook returning a *smtp.SMTPError sends
// that reply; nil accepts.
type Options struct {
	Mail func(from string) error
	Rcpt func(to string) error
	Data func(from string, to []string, data []byte) error
	// RcptFrom, when set, is asked after Rcpt with the client's address
	// ("ip:port"): a receiver that treats source addresses differently.
	RcptFrom func(peer, to string) error
	// Greeting, when set, is sent instead of a 220 banner on every
	// connection, which is then closed ("421 4.7.0 Too many sessions").
	Greeting string
	// TLS offers STARTTLS with this config (see SelfSigned).
	TLS *tls.Config
	// Stall delays every reply to DATA's final dot.
	Stall time.Duration
	// MaxMessageBytes advertises SIZE.
	MaxMessageBytes int64
	// SMTPUTF8 advertises SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool
	// IdleTimeout closes a session idle this long with "421 4.4.2"
	// (default one minute), to stand for a receiver dropping idle clients.
	IdleTimeout time.Duration
	// Wire records every byte clients send (see Server.Wire). Bytes after
	// STARTTLS are recorded as the ciphertext they are.
	Wire bool
	// Discard counts accepted messages without keeping them (benchmarks);
	// without a Data callback, it reads them into nothing: a receiver
	// that buffered 100 KiB messages only to drop them took more of a
	// benchmark's cores than the sender.
	Discard bool
	// Quiet drops go-smtp's log of broken sessions (tests that kill
	// clients on purpose).
	Quiet bool
}

// Server is a running receiver.
type Server struct {
	Addr string // 127.0.0.1:port
	opts Options
	srv  *smtp.Server
	ln   net.Listener

	mu    sync.Mutex
	msgs  []Message
	count int
	conns int
	seen  map[string]int  // remote address -> session number
	wire  []*bytes.Buffer // raw client bytes, one buffer per accepted connection
}

// Start runs a receiver until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Listen runs a receiver on addr.
func Listen(addr string, o Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), opts: o, ln: ln, seen: map[string]int{}}
	if o.Wire {
		s.ln = &tapListener{Listener: ln, s: s}
	}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "mx.sink.test"
	s.srv.TLSConfig = o.TLS
	s.srv.MaxMessageBytes = o.MaxMessageBytes
	if s.srv.MaxMessageBytes == 0 {
		s.srv.MaxMessageBytes = 50 << 20
	}
	s.srv.MaxRecipients = 1000
	s.srv.EnableSMTPUTF8 = o.SMTPUTF8
	s.srv.ReadTimeout = time.Minute
	if o.IdleTimeout > 0 {
		s.srv.ReadTimeout = o.IdleTimeout
	}
	s.srv.WriteTimeout = time.Minute
	if o.Quiet {
		s.srv.ErrorLog = log.New(io.Discard, "", 0)
	}
	if o.Greeting != "" {
		go s.refuse()
	} else {
		go func() { _ = s.srv.Serve(s.ln) }()
	}
	return s, nil
}

// Port is the listening port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Close stops the receiver.
func (s *Server) Close() {
	if s.opts.Greeting != "" {
		_ = s.ln.Close()
		return
	}
	_ = s.srv.Close()
}

// Messages returns a copy of everything accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Count is the number of accepted messages.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Wire returns what clients sent, connection after connection in the
// order they were accepted (Options.Wire must be set).
func (s *Server) Wire() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []byte
	for _, b := range s.wire {
		all = append(all, b.Bytes()...)
	}
	return all
}

// tapListener records what each accepted connection reads.
type tapListener struct {
	net.Listener
	s *Server
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	buf := new(bytes.Buffer)
	l.s.mu.Lock()
	l.s.wire = append(l.s.wire, buf)
	l.s.mu.Unlock()
	return &tapConn{Conn: c, s: l.s, buf: buf}, nil
}

type tapConn struct {
	net.Conn
	s   *Server
	buf *bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.s.mu.Lock()
	c.buf.Write(p[:n])
	c.s.mu.Unlock()
	return n, err
}

// Conns is the number of SMTP connections that said EHLO.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *Server) refuse() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go func() {
			_, _ = io.WriteString(c, s.opts.Greeting+"\r\n")
			_ = c.Close()
		}()
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	// go-smtp starts a new backend session after STARTTLS; the remote
	// address tells it is the same connection.
	remote := c.Conn().RemoteAddr().String()
	s.mu.Lock()
	n, ok := s.seen[remote]
	if !ok {
		s.conns++
		n = s.conns
		s.seen[remote] = n
	}
	s.mu.Unlock()
	_, isTLS := c.TLSConnectionState()
	return &session{s: s, conn: n, helo: c.Hostname(), tls: isTLS, c: c, peer: remote}, nil
}

type session struct {
	s    *Server
	c    *smtp.Conn
	conn int
	helo string
	peer string
	tls  bool
	from string
	opts smtp.MailOptions
	to   []string
}

func (x *session) Reset()        { x.from, x.to, x.opts = "", nil, smtp.MailOptions{} }
func (x *session) Logout() error { return nil }

func (x *session) Mail(from string, opts *smtp.MailOptions) error {
	if x.s.opts.Mail != nil {
		if err := x.s.opts.Mail(from); err != nil {
			return err
		}
	}
	x.from = from
	if opts != nil {
		x.opts = *opts
	}
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.s.opts.Rcpt != nil {
		if err := x.s.opts.Rcpt(to); err != nil {
			return err
		}
	}
	if x.s.opts.RcptFrom != nil {
		if err := x.s.opts.RcptFrom(x.peer, to); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	var w io.Writer = &buf
	if x.s.opts.Discard && x.s.opts.Data == nil {
		w = io.Discard // read to the end, kept nowhere
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	if x.s.opts.Stall > 0 {
		time.Sleep(x.s.opts.Stall)
	}
	if x.s.opts.Data != nil {
		if err := x.s.opts.Data(x.from, x.to, buf.Bytes()); err != nil {
			return err
		}
	}
	_, isTLS := x.c.TLSConnectionState()
	x.s.mu.Lock()
	x.s.count++
	if !x.s.opts.Discard {
		x.s.msgs = append(x.s.msgs, Message{From: x.from, To: append([]string(nil), x.to...),
			Data: buf.Bytes(), TLS: isTLS || x.tls, Helo: x.helo, Peer: x.peer, Conn: x.conn,
			Size: x.opts.Size, Body: string(x.opts.Body), UTF8: x.opts.UTF8})
	}
	x.s.mu.Unlock()
	return nil
}

// Reply builds a scripted SMTP reply: Reply(550, "5.1.1", "no such user").
func Reply(code int, enhanced string, text string) error {
	e := &smtp.SMTPError{Code: code, Message: text, EnhancedCode: smtp.NoEnhancedCode}
	if enhanced != "" {
		var a, b, c int
		parts := bytes.Split([]byte(enhanced), []byte("."))
		if len(parts) == 3 {
			a, _ = strconv.Atoi(string(parts[0]))
			b, _ = strconv.Atoi(string(parts[1]))
			c, _ = strconv.Atoi(string(parts[2]))
			e.EnhancedCode = smtp.EnhancedCode{a, b, c}
		}
	}
	return e
}

// SelfSigned returns a TLS config with a fresh self-signed certificate.
func SelfSigned(t testing.TB) *tls.Config {
	t.Helper()
	cfg, err := mxsim.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
