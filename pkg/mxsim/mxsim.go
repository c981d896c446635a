// Package mxsim simulates a mailbox provider's inbound MX for tests and
// benchmarks: a go-smtp receiver on loopback that enforces a message rate
// and a connection limit the way providers do, answering with their real
// replies (provider-responses.md): over the rate, a scripted deferral such
// as "451 4.7.500 Server busy" or "421 4.7.28 … rate limited"; over the
// connection limit, "421 Too many sessions" at greeting. The allowed rate
// can change while it runs (SetRate, or Config.Schedule at set times),
// and per-recipient replies can be scripted.
//
// It records when every attempt was accepted or refused, so a benchmark
// can measure goodput, deferral share and convergence from the receiver's
// side, which is the side that counts.
package mxsim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/time/rate"
)

// Config scripts a simulated provider.
type Config struct {
	// Rate is how many messages per second are accepted (0: no limit),
	// with a tolerance of Burst messages (default Rate/5, at least 1).
	Rate  float64
	Burst int
	// OverRate is the reply to a message over the rate (default
	// Microsoft's 451 4.7.500 Server busy).
	OverRate Reply
	// Stage is where OverRate is given: "mail", "rcpt" (default) or
	// "data" (after the message, like a provider that decides late).
	Stage string
	// MaxConns limits simultaneous sessions (0: none); a session over it
	// gets Greeting and is closed.
	MaxConns int
	// Greeting refuses a session over MaxConns (default
	// "421 4.7.0 Too many sessions opened").
	Greeting string
	// Latency delays the reply to each message's final dot: the
	// provider's processing time, which makes connections a resource.
	Latency time.Duration
	// Schedule changes the rate at times after the server starts.
	Schedule []Change
	// Rcpt, when set, scripts per-recipient replies before the rate is
	// checked; it returns nil to go on.
	Rcpt func(to string) *Reply
	// Domain is the name in the banner (default "mx.sim.test").
	Domain string
	// TLS offers STARTTLS with this config (see SelfSigned).
	TLS *tls.Config
	// Message, when set, gets each message accepted, with its envelope
	// (only the recipients accepted); an error refuses it with 451.
	Message func(from string, to []string, data []byte) error
}

// Change sets the rate At a time after start.
type Change struct {
	At   time.Duration
	Rate float64
}

// Server is a running simulator.
type Server struct {
	cfg   Config
	srv   *smtp.Server
	ln    net.Listener
	start time.Time

	mu       sync.Mutex
	lim      *rate.Limiter // nil: unlimited
	open     int
	peak     int
	sessions int
	events   []Event
	timers   []*time.Timer
}

// Kind is what happened to one attempt.
type Kind int

const (
	Accepted Kind = iota // the message was taken
	Deferred             // refused over the rate
	Refused              // the session was refused over the connection limit
	Scripted             // a scripted per-recipient reply
)

// Event is one attempt's fate, At an offset from start.
type Event struct {
	At   time.Duration
	Kind Kind
}

// Listen starts a simulator on addr ("127.0.0.1:0" picks a port).
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.OverRate.Code == 0 {
		cfg.OverRate = MicrosoftBusy
	}
	if cfg.Greeting == "" {
		cfg.Greeting = "421 4.7.0 Too many sessions opened, try again later"
	}
	if cfg.Stage == "" {
		cfg.Stage = "rcpt"
	}
	switch cfg.Stage {
	case "mail", "rcpt", "data":
	default:
		return nil, fmt.Errorf("mxsim: stage %q is not mail, rcpt or data", cfg.Stage)
	}
	if cfg.Domain == "" {
		cfg.Domain = "mx.sim.test"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mxsim: %w", err)
	}
	s := &Server{cfg: cfg, start: time.Now()}
	s.SetRate(cfg.Rate)
	s.ln = &limitListener{Listener: ln, s: s}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	s.srv.Domain = cfg.Domain
	s.srv.TLSConfig = cfg.TLS
	s.srv.MaxMessageBytes = 50 << 20
	s.srv.MaxRecipients = 1000
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.ErrorLog = discardLog{}
	for _, c := range cfg.Schedule {
		s.timers = append(s.timers, time.AfterFunc(c.At, func() { s.SetRate(c.Rate) }))
	}
	go func() { _ = s.srv.Serve(s.ln) }()
	return s, nil
}

// Addr is the listening address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port is the listening port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Close stops the simulator and its sessions.
func (s *Server) Close() {
	s.mu.Lock()
	for _, t := range s.timers {
		t.Stop()
	}
	s.mu.Unlock()
	_ = s.srv.Close()
}

// SetRate changes the accepted rate now (0: no limit). The bucket starts
// full, as a provider's counter would be after a quiet spell.
func (s *Server) SetRate(r float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r <= 0 {
		s.lim = nil
		return
	}
	b := s.cfg.Burst
	if b <= 0 {
		b = max(1, int(r/5))
	}
	if s.lim == nil {
		s.lim = rate.NewLimiter(rate.Limit(r), b)
		return
	}
	s.lim.SetLimit(rate.Limit(r))
	s.lim.SetBurst(b)
}

// Rate is the accepted rate now (0: no limit).
func (s *Server) Rate() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lim == nil {
		return 0
	}
	return float64(s.lim.Limit())
}

// Start is when the simulator started; Event.At is relative to it.
func (s *Server) Start() time.Time { return s.start }

// Events returns a copy of every attempt's fate so far, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Stats counts attempts by kind.
type Stats struct {
	Accepted, Deferred, Refused, Scripted int
	// Sessions is how many sessions were admitted, PeakConns the most
	// open at once, Open how many are open now.
	Sessions, PeakConns, Open int
}

// Stats counts what happened so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Sessions: s.sessions, PeakConns: s.peak, Open: s.open}
	for _, e := range s.events {
		switch e.Kind {
		case Accepted:
			st.Accepted++
		case Deferred:
			st.Deferred++
		case Refused:
			st.Refused++
		case Scripted:
			st.Scripted++
		}
	}
	return st
}

func (s *Server) record(k Kind) {
	s.mu.Lock()
	s.events = append(s.events, Event{At: time.Since(s.start), Kind: k})
	s.mu.Unlock()
}

// allow takes one message from the rate, or reports it is over.
func (s *Server) allow() bool {
	s.mu.Lock()
	lim := s.lim
	s.mu.Unlock()
	return lim == nil || lim.Allow()
}

// limitListener refuses sessions over MaxConns at greeting, as Comcast's
// "421 … Too many sessions opened" does, without handing them to go-smtp.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.s
		s.mu.Lock()
		over := s.cfg.MaxConns > 0 && s.open >= s.cfg.MaxConns
		if !over {
			s.open++
			s.sessions++
			s.peak = max(s.peak, s.open)
		}
		s.mu.Unlock()
		if over {
			s.record(Refused)
			go func() {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, s.cfg.Greeting+"\r\n")
				_ = c.Close()
			}()
			continue
		}
		return &countedConn{Conn: c, s: s}, nil
	}
}

type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

type session struct {
	s    *Server
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.cfg.Stage == "mail" && !x.s.allow() {
		x.s.record(Deferred)
		return x.s.cfg.OverRate.err()
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.s.cfg.Rcpt != nil {
		if r := x.s.cfg.Rcpt(to); r != nil {
			x.s.record(Scripted)
			return r.err()
		}
	}
	if x.s.cfg.Stage == "rcpt" && !x.s.allow() {
		x.s.record(Deferred)
		return x.s.cfg.OverRate.err()
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	var data []byte
	if x.s.cfg.Message != nil {
		var err error
		if data, err = io.ReadAll(r); err != nil {
			return err
		}
	} else if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if x.s.cfg.Latency > 0 {
		time.Sleep(x.s.cfg.Latency)
	}
	if x.s.cfg.Stage == "data" && !x.s.allow() {
		x.s.record(Deferred)
		return x.s.cfg.OverRate.err()
	}
	if x.s.cfg.Message != nil {
		if err := x.s.cfg.Message(x.from, x.to, data); err != nil {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not store the message"}
		}
	}
	x.s.record(Accepted)
	return nil
}

// Reply is an SMTP reply.
type Reply struct {
	Code     int
	Enhanced string // "4.7.500", "" for none
	Text     string
}

func (r Reply) String() string {
	return strings.TrimSpace(fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text))
}

func (r Reply) err() error {
	e := &smtp.SMTPError{Code: r.Code, Message: r.Text, EnhancedCode: smtp.NoEnhancedCode}
	if p := strings.Split(r.Enhanced, "."); len(p) == 3 {
		for i := range p {
			e.EnhancedCode[i], _ = strconv.Atoi(p[i])
		}
	}
	return e
}

// ParseReply reads "451 4.7.500 Server busy" (the enhanced code is
// optional).
func ParseReply(s string) (Reply, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Reply{}, errors.New("mxsim: empty reply")
	}
	code, err := strconv.Atoi(f[0])
	if err != nil || code < 400 || code > 599 {
		return Reply{}, fmt.Errorf("mxsim: reply %q: want a 4xx or 5xx code first", s)
	}
	r := Reply{Code: code}
	f = f[1:]
	if len(f) > 0 && strings.Count(f[0], ".") == 2 && f[0][0] >= '2' && f[0][0] <= '5' {
		r.Enhanced, f = f[0], f[1:]
	}
	r.Text = strings.Join(f, " ")
	return r, nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...interface{}) {}
func (discardLog) Println(...interface{})        {}
