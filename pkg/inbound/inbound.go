// Package inbound is sluice's listener for the mail that comes back: a
// small SMTP server that takes asynchronous bounces at the VERP return
// paths and feedback-loop reports at the FBL addresses, classifies each
// message with pkg/feedback and hands the result to a callback.
//
// It is not a relay and not a mailbox: any other recipient is refused at
// RCPT TO. Messages are bounded in size, each client IP in rate, and a
// message is acknowledged with 250 only after the callback has taken it;
// if the callback fails the client hears 451 and tries again later.
// Messages that turn out to be no report at all (spam sent to a bounce
// address) are accepted and dropped, so they cause no backscatter.
package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/feedback"
)

// Config is the listener's configuration.
type Config struct {
	// Listen is the address to listen on ("0.0.0.0:25").
	Listen string
	// Hostname names this host in the banner and EHLO reply.
	Hostname string
	// ReturnPaths are the envelope senders sluice sends with, the base of
	// its VERP addresses ("bounces@mail.example.com"). Mail is accepted
	// for each of them and for its tagged forms (bounces+TAG@...); any
	// other local part at their domains is an unknown user.
	ReturnPaths []string
	// FBLAddresses are the addresses registered with providers' feedback
	// loops for complaint reports, accepted exactly.
	FBLAddresses []string
	// MaxMessageBytes bounds a message (default 10 MiB).
	MaxMessageBytes int64
	// MaxRecipients bounds one transaction's recipients (default 10).
	MaxRecipients int
	// Rate is how many messages a second one client IP may send
	// (default 10), with bursts of Burst (default 100).
	Rate  float64
	Burst int
	// ReadTimeout and WriteTimeout bound each command (default 1 minute).
	ReadTimeout, WriteTimeout time.Duration
	// HandlerTimeout bounds one callback (default 30 seconds).
	HandlerTimeout time.Duration
}

// Defaults.
const (
	DefaultMaxMessageBytes = 10 << 20
	DefaultMaxRecipients   = 10
	DefaultRate            = 10
	DefaultBurst           = 100
)

// Report is one accepted message for one envelope recipient, read and
// classified: the feedback.Report plus the SMTP envelope it came with.
type Report struct {
	feedback.Report
	RemoteIP string    // the client's IP address
	MailFrom string    // the envelope sender ("" for a bounce)
	RcptTo   string    // the envelope recipient it was accepted for
	Size     int       // message size in bytes
	Received time.Time // when the message was received
}

// Handler takes one report. An error makes the listener answer 451 so the
// sender retries; it must not keep the report in that case.
type Handler func(ctx context.Context, r Report) error

// Server is a running listener.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	smtp    *smtp.Server
	rate    *limiter
	paths   map[string][]string // domain -> return path local parts
	fbl     map[string]bool
	ctx     context.Context // ends on Close: callbacks in flight see it
	cancel  context.CancelFunc
	now     func() time.Time

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
}

// New checks cfg and returns a listener that passes reports to h.
func New(cfg Config, h Handler, log *slog.Logger) (*Server, error) {
	if h == nil {
		return nil, errors.New("inbound: no handler")
	}
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.ReturnPaths) == 0 && len(cfg.FBLAddresses) == 0 {
		return nil, errors.New("inbound: neither return paths nor FBL addresses are configured: nothing to accept")
	}
	s := &Server{cfg: cfg, handler: h, log: log, paths: map[string][]string{}, fbl: map[string]bool{}, now: time.Now}
	for _, rp := range cfg.ReturnPaths {
		local, domain, ok := strings.Cut(rp, "@")
		if !ok || local == "" || domain == "" || strings.Contains(local, "+") {
			return nil, fmt.Errorf("inbound: return path %q is not local@domain (without a +tag)", rp)
		}
		d := strings.ToLower(domain)
		s.paths[d] = append(s.paths[d], strings.ToLower(local))
	}
	for _, a := range cfg.FBLAddresses {
		if !strings.Contains(a, "@") {
			return nil, fmt.Errorf("inbound: FBL address %q is not an address", a)
		}
		s.fbl[strings.ToLower(a)] = true
	}
	if s.cfg.MaxMessageBytes <= 0 {
		s.cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if s.cfg.MaxRecipients <= 0 {
		s.cfg.MaxRecipients = DefaultMaxRecipients
	}
	if s.cfg.Rate <= 0 {
		s.cfg.Rate = DefaultRate
	}
	if s.cfg.Burst <= 0 {
		s.cfg.Burst = DefaultBurst
	}
	if s.cfg.ReadTimeout <= 0 {
		s.cfg.ReadTimeout = time.Minute
	}
	if s.cfg.WriteTimeout <= 0 {
		s.cfg.WriteTimeout = time.Minute
	}
	if s.cfg.HandlerTimeout <= 0 {
		s.cfg.HandlerTimeout = 30 * time.Second
	}
	if s.cfg.Hostname == "" {
		s.cfg.Hostname = "localhost"
	}
	s.rate = newLimiter(s.cfg.Rate, s.cfg.Burst)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = s.cfg.MaxRecipients
	srv.ReadTimeout = s.cfg.ReadTimeout
	srv.WriteTimeout = s.cfg.WriteTimeout
	srv.ErrorLog = smtpLog{log}
	s.smtp = srv
	return s, nil
}

// accepts tells whether rcpt is an address this listener takes mail for;
// when not, the reply says why: relaying denied, or unknown user at one
// of its domains.
func (s *Server) accepts(rcpt string) *smtp.SMTPError {
	a := strings.ToLower(strings.TrimSpace(rcpt))
	if s.fbl[a] {
		return nil
	}
	local, domain, ok := strings.Cut(a, "@")
	locals, mine := s.paths[domain]
	if !ok || !mine {
		if ok && s.fblDomain(domain) {
			return errUnknown
		}
		return errRelay
	}
	if base, _, tagged := strings.Cut(local, "+"); tagged {
		local = base
	}
	for _, l := range locals {
		if l == local {
			return nil
		}
	}
	return errUnknown
}

func (s *Server) fblDomain(domain string) bool {
	for a := range s.fbl {
		if strings.HasSuffix(a, "@"+domain) {
			return true
		}
	}
	return false
}

// ListenAndServe listens on cfg.Listen and serves until ctx ends or the
// listener fails; then it lets open sessions finish for a few seconds.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.cfg.Listen == "" {
		return errors.New("inbound: listen address not set")
	}
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("inbound: listen on %s: %w", s.cfg.Listen, err)
	}
	s.log.Info("inbound listening", "addr", l.Addr().String())
	errs := make(chan error, 1)
	go func() { errs <- s.Serve(l) }()
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.Shutdown(sctx)
	return err
}

// Serve accepts sessions on l until the server is closed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.smtp.Serve(l)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting sessions and waits for open ones until ctx
// ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopListening()
	err := s.smtp.Shutdown(ctx)
	s.cancel()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	if err != nil {
		_ = s.smtp.Close()
	}
	return err
}

// Close stops at once. A message whose callback had not returned was not
// acknowledged: its sender will send it again.
func (s *Server) Close() error {
	s.stopListening()
	s.cancel()
	if err := s.smtp.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func (s *Server) stopListening() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, l := range s.listeners {
		_ = l.Close()
	}
}

// smtpLog passes go-smtp's internal error reports to slog.
type smtpLog struct{ l *slog.Logger }

func (g smtpLog) Printf(format string, v ...any) { g.l.Warn("inbound: " + fmt.Sprintf(format, v...)) }
func (g smtpLog) Println(v ...any)               { g.l.Warn("inbound: " + fmt.Sprint(v...)) }
