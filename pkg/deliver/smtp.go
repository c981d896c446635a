package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/mx"
)

// SMTPConfig configures outbound SMTP sessions.
type SMTPConfig struct {
	Hostname string      // EHLO name
	Resolver mx.Resolver // addresses of MX hosts
	// Timeouts after RFC 5321 §4.5.3.2: the initial 220 and each command
	// reply (5 min), the final dot (10 min). Connect is ours.
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	DataTimeout    time.Duration
	// MaxMessagesPerConn bounds how many messages one session carries.
	MaxMessagesPerConn int
	// IdleTimeout closes pooled sessions that carried nothing for this long.
	IdleTimeout time.Duration
}

func (c *SMTPConfig) defaults() {
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = 5 * time.Minute
	}
	if c.DataTimeout == 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.MaxMessagesPerConn == 0 {
		c.MaxMessagesPerConn = 100
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
}

// SMTP delivers messages over pooled SMTP sessions, one pool per host.
type SMTP struct {
	cfg  SMTPConfig
	mu   sync.Mutex
	idle map[string][]*session // by host address
}

type session struct {
	c        *smtp.Client
	addr     string
	host     string
	sent     int
	lastUsed time.Time
}

// NewSMTP returns a sender with cfg (zero fields take defaults).
func NewSMTP(cfg SMTPConfig) *SMTP {
	cfg.defaults()
	return &SMTP{cfg: cfg, idle: map[string][]*session{}}
}

// Send delivers msg to env.To at d, trying d's hosts in order until one
// gives an answer about the message itself.
func (s *SMTP) Send(ctx context.Context, d Destination, env Envelope, msg []byte) Outcome {
	var last Outcome
	for _, h := range d.Hosts {
		out, tryNext := s.sendHost(ctx, h, env, msg)
		if !tryNext {
			return out
		}
		last = out
	}
	if last.Status == "" {
		last = Outcome{Status: Deferred, Scope: ScopeDomain, Stage: StageRoute, Text: "no hosts to try"}
	}
	return last
}

// sendHost runs one transaction on host h. tryNext reports that the host
// never reached the transaction (connection refused, 421 at greeting), so
// the next MX should be tried (RFC 5321 §5.1).
func (s *SMTP) sendHost(ctx context.Context, h Host, env Envelope, msg []byte) (Outcome, bool) {
	for attempt := 0; ; attempt++ {
		sess, reused, out := s.get(ctx, h)
		if sess == nil {
			return out, true
		}
		out, broken := s.transact(sess, env, msg)
		// A pooled session the server dropped while idle fails on its first
		// command with an I/O error; that says nothing about the message.
		if broken && reused && out.Stage == StageMail && attempt == 0 {
			sess.c.Close()
			continue
		}
		s.put(sess, broken)
		return out, false
	}
}

func (s *SMTP) transact(sess *session, env Envelope, msg []byte) (Outcome, bool) {
	c := sess.c
	if err := c.Mail(env.From, nil); err != nil {
		return s.fail(sess, StageMail, err)
	}
	if err := c.Rcpt(env.To, nil); err != nil {
		return s.fail(sess, StageRcpt, err)
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(sess, StageData, err)
	}
	if _, err := w.Write(msg); err != nil {
		return s.fail(sess, StageData, err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return s.fail(sess, StageData, err)
	}
	sess.sent++
	return Outcome{Status: Delivered, Code: 250, Text: resp.StatusText, Stage: StageData, Host: sess.host}, false
}

// fail classifies err; an SMTP reply leaves the session usable (after
// RSET), anything else breaks it.
func (s *SMTP) fail(sess *session, stage Stage, err error) (Outcome, bool) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		out := Classify(se.Code, enhanced(se.EnhancedCode), se.Message)
		out.Stage, out.Host = stage, sess.host
		if se.Code == 421 { // the server is closing the channel (RFC 5321 §3.8)
			return out, true
		}
		if rerr := sess.c.Reset(); rerr != nil {
			return out, true
		}
		return out, false
	}
	return Outcome{Status: Deferred, Scope: ScopeHost, Stage: stage, Host: sess.host, Text: err.Error()}, true
}

func enhanced(c smtp.EnhancedCode) string {
	if c == (smtp.EnhancedCode{}) || c == smtp.NoEnhancedCode || c[0] <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// get returns an idle session for h or dials a new one. On failure it
// returns a nil session and the classified outcome.
func (s *SMTP) get(ctx context.Context, h Host) (*session, bool, Outcome) {
	key := h.Addr()
	s.mu.Lock()
	for len(s.idle[key]) > 0 {
		list := s.idle[key]
		sess := list[len(list)-1]
		s.idle[key] = list[:len(list)-1]
		if time.Since(sess.lastUsed) > s.cfg.IdleTimeout {
			go sess.c.Close()
			continue
		}
		s.mu.Unlock()
		return sess, true, Outcome{}
	}
	s.mu.Unlock()
	sess, out := s.dial(ctx, h)
	return sess, false, out
}

func (s *SMTP) put(sess *session, broken bool) {
	if broken || sess.sent >= s.cfg.MaxMessagesPerConn {
		go func() { _ = sess.c.Quit() }()
		return
	}
	sess.lastUsed = time.Now()
	s.mu.Lock()
	s.idle[sess.addr] = append(s.idle[sess.addr], sess)
	s.mu.Unlock()
}

func (s *SMTP) dial(ctx context.Context, h Host) (*session, Outcome) {
	addr, err := s.address(ctx, h)
	if err != nil {
		return nil, Outcome{Status: Deferred, Scope: ScopeHost, Stage: StageConnect, Host: h.Name, Text: err.Error()}
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, Outcome{Status: Deferred, Scope: ScopeHost, Stage: StageConnect, Host: h.Name, Text: err.Error()}
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = s.cfg.CommandTimeout
	c.SubmissionTimeout = s.cfg.DataTimeout
	if err := c.Hello(s.cfg.Hostname); err != nil {
		c.Close()
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			out := Classify(se.Code, enhanced(se.EnhancedCode), se.Message)
			out.Stage, out.Host = StageGreeting, h.Name
			if out.Status != Deferred { // a session-level 5xx is no verdict on a recipient
				out.Status = Deferred
			}
			return nil, out
		}
		return nil, Outcome{Status: Deferred, Scope: ScopeHost, Stage: StageGreeting, Host: h.Name, Text: err.Error()}
	}
	// Opportunistic STARTTLS (RFC 3207, RFC 7435): certificates of MX hosts
	// are not verified.
	if ok, _ := c.Extension("STARTTLS"); ok {
		tc, err := startTLS(conn, c, s.cfg, h.Name)
		if err != nil {
			c.Close()
			return nil, Outcome{Status: Deferred, Scope: ScopeHost, Stage: StageTLS, Host: h.Name, Text: err.Error()}
		}
		c = tc
	}
	return &session{c: c, addr: h.Addr(), host: h.Name, lastUsed: time.Now()}, Outcome{}
}

func (s *SMTP) address(ctx context.Context, h Host) (string, error) {
	if ip := net.ParseIP(h.Name); ip != nil || h.Routed || s.cfg.Resolver == nil {
		return h.Addr(), nil
	}
	ips, err := s.cfg.Resolver.LookupIP(ctx, h.Name)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", h.Name, err)
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolve %s: no addresses", h.Name)
	}
	return joinHostPort(ips[0].String(), h.Port), nil
}

// Close ends every pooled session.
func (s *SMTP) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, list := range s.idle {
		for _, sess := range list {
			_ = sess.c.Quit()
		}
		delete(s.idle, k)
	}
}
