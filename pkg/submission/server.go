// Package submission is sluice's SMTP message submission service for
// applications (RFC 6409). It listens with STARTTLS (RFC 3207, port 587)
// and optionally with implicit TLS (RFC 8314, port 465), and offers AUTH
// PLAIN and LOGIN (RFC 4954) only once the session is encrypted.
//
// Every transaction must be authenticated, and its senders (envelope and
// From header) must be in the user's own domains: the service relays
// nothing for anyone else. A message is accepted only after it is stored
// durably in Redis, one transactional job per recipient; the 250 reply
// names the job IDs.
package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/streams"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// MaxRecipients caps one transaction's recipients; more get 452 4.5.3
// (RFC 5321 §4.5.3.1.10 requires accepting at least 100).
const MaxRecipients = 100

// shutdownGrace is how long ListenAndServe lets open sessions finish
// after its context ends.
const shutdownGrace = 5 * time.Second

// storeTimeout bounds how long a client waits on Redis for its 250.
const storeTimeout = 15 * time.Second

// Server is a submission listener.
type Server struct {
	cfg      config.Submission
	hostname string
	users    *users
	queue    *intake.Queue
	log      *slog.Logger
	tls      *tls.Config
	smtp     *smtp.Server
	now      func() time.Time

	conns *connCounter // open sessions per client address
	auth  *authLimiter // failed AUTHs per client address and user name

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	bound     []boundListener // by Listen, for Run
}

// boundListener is a socket Listen bound, and whether it speaks TLS from
// the first byte.
type boundListener struct {
	net.Listener
	implicit bool
}

// New checks cfg and returns a server that stores accepted mail through q
// under ks. hostname names this host in the banner and Received headers.
//
// A TLS certificate (tls_cert, tls_key) is required unless
// allow_insecure_auth is set, and that is accepted only for a loopback
// listen address: passwords never cross a network in clear text.
func New(cfg config.Submission, hostname string, q *streams.Queue, ks keyspace.Space, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.WithDefaults()
	if a := cfg.AuthFailures; cfg.MaxConnectionsPerIP < 0 || a.PerIP < 0 || a.PerUser < 0 || a.Window < 0 {
		return nil, errors.New("submission: max_connections_per_ip and auth_failures must not be negative")
	}
	us, maxBytes, err := newUsers(cfg.Users)
	if err != nil {
		return nil, fmt.Errorf("submission: %w", err)
	}
	s := &Server{cfg: cfg, hostname: hostname, users: us, queue: intake.NewQueue(q, ks), log: log, now: time.Now,
		conns: &connCounter{max: cfg.MaxConnectionsPerIP, n: map[string]int{}}}
	s.auth = newAuthLimiter(cfg.AuthFailures.PerIP, cfg.AuthFailures.PerUser, cfg.AuthFailures.Window,
		func() time.Time { return s.now() })
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("submission: load tls_cert/tls_key: %w", err)
		}
		// RFC 8314 §4.1 and RFC 8996: TLS 1.2 or later.
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	switch {
	case cfg.AllowInsecureAuth && cfg.Listen != "" && !loopbackHost(cfg.Listen):
		return nil, fmt.Errorf("submission: allow_insecure_auth is only accepted with a loopback listen address, not %q", cfg.Listen)
	case s.tls == nil && !cfg.AllowInsecureAuth:
		return nil, errors.New("submission: tls_cert and tls_key are required (AUTH is offered only over TLS)")
	case s.tls == nil && cfg.ListenTLS != "":
		return nil, errors.New("submission: listen_tls needs tls_cert and tls_key")
	}

	srv := smtp.NewServer(s)
	srv.Domain = hostname
	srv.TLSConfig = s.tls
	srv.MaxMessageBytes = maxBytes // the largest user's; each user's own limit is applied in Data
	srv.MaxRecipients = MaxRecipients
	// go-smtp's own gate would answer AUTH in clear text with 523 5.7.10;
	// the session gates it instead, with RFC 4954's 538 5.7.11, and does
	// not advertise AUTH before TLS at all.
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 5 * time.Minute // RFC 5321 §4.5.3.2.7
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = smtpLog{log}
	s.smtp = srv
	return s, nil
}

// NewSession implements smtp.Backend. go-smtp calls it at EHLO, and again
// after STARTTLS, so a session never carries authentication across the
// TLS upgrade (RFC 3207 §4.2).
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	remote := c.Conn().RemoteAddr()
	return &session{
		srv: s, conn: c, remote: remote, client: clientKey(remote), tls: isTLS,
		insecureOK: s.cfg.AllowInsecureAuth && loopbackAddr(remote),
	}, nil
}

// ListenAndServe is Listen, then Run.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Run(ctx)
}

// Listen binds cfg.Listen (STARTTLS) and cfg.ListenTLS (implicit TLS),
// whichever are set, and returns at once; an address that cannot be
// bound (a port in use) is an error and nothing stays bound. Run then
// serves them.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("submission: server closed")
	}
	if len(s.bound) > 0 {
		return errors.New("submission: already listening")
	}
	var ls []boundListener
	for _, implicit := range []bool{false, true} {
		addr := s.cfg.Listen
		if implicit {
			addr = s.cfg.ListenTLS
		}
		if addr == "" {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return fmt.Errorf("submission: listen on %s: %w", addr, err)
		}
		ls = append(ls, boundListener{l, implicit})
	}
	if len(ls) == 0 {
		return errors.New("submission: neither listen nor listen_tls is set")
	}
	s.bound = ls
	return nil
}

// Addrs are the addresses Listen bound: the STARTTLS one first.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.bound))
	for i, l := range s.bound {
		out[i] = l.Addr()
	}
	return out
}

// Run serves the listeners Listen bound until ctx ends or one fails;
// then it lets open sessions finish for a few seconds.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	ls := s.bound
	s.mu.Unlock()
	if len(ls) == 0 {
		return errors.New("submission: Run before Listen")
	}
	errs := make(chan error, len(ls))
	for _, l := range ls {
		s.log.Info("submission listening", "addr", l.Addr().String(), "implicit_tls", l.implicit)
		serve := s.Serve
		if l.implicit {
			serve = s.ServeTLS
		}
		go func() { errs <- serve(l.Listener) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	_ = s.Shutdown(sctx)
	return err
}

// Serve accepts submission sessions on l, offering STARTTLS. A client
// address past max_connections_per_ip is answered 421 and closed.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(&capListener{Listener: l, conns: s.conns, refuse: refusePlain})
}

// ServeTLS accepts sessions on l that start with a TLS handshake
// (implicit TLS, RFC 8314 §3.3).
func (s *Server) ServeTLS(l net.Listener) error {
	if s.tls == nil {
		return errors.New("submission: implicit TLS needs tls_cert and tls_key")
	}
	return s.serve(tls.NewListener(&capListener{Listener: l, conns: s.conns, refuse: refuseTLS(s.tls)}, s.tls))
}

func (s *Server) serve(l net.Listener) error {
	// Register l first: a Close racing with this call must still find
	// and close it, or Serve would block forever.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.smtp.Serve(l)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting sessions and waits for open ones to end, until
// ctx does; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closeListeners()
	s.mu.Unlock()
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	if err != nil {
		_ = s.smtp.Close()
	}
	return err
}

// Close stops every listener and ends open sessions at once. A message
// being stored is either queued in full or not at all; if its client
// missed the 250 it sends the message again (at-least-once).
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.closeListeners()
	s.mu.Unlock()
	if err := s.smtp.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// closeListeners closes those being served and those bound but not yet
// served; s.mu is held.
func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		_ = l.Close()
	}
	for _, l := range s.bound {
		_ = l.Close()
	}
}

// loopbackHost reports whether a listen address binds loopback only.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loopbackAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// smtpLog passes go-smtp's internal error reports to slog.
type smtpLog struct{ l *slog.Logger }

func (g smtpLog) Printf(format string, v ...any) {
	g.l.Warn("submission: " + fmt.Sprintf(format, v...))
}
func (g smtpLog) Println(v ...any) { g.l.Warn("submission: " + fmt.Sprint(v...)) }
