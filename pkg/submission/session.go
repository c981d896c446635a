package submission

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/address"
	"github.com/sluice-mta/sluice/pkg/metrics"
	"github.com/sluice-mta/sluice/pkg/submission/intake"
)

// Replies the session sends itself (codes from RFC 4954 §6, RFC 5321
// §4.2.3 and RFC 3463).
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errEncryption   = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism (use STARTTLS)"}
	errStore        = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not queue the message; try again later"}
)

func reply(code int, enh smtp.EnhancedCode, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: fmt.Sprintf(format, args...)}
}

// session is one SMTP session (go-smtp starts a new one after STARTTLS).
type session struct {
	srv        *Server
	conn       *smtp.Conn
	remote     net.Addr
	client     string // the key the abuse limits count by (clientKey)
	tls        bool
	insecureOK bool // clear-text AUTH allowed: configured, and the client is on loopback
	user       *user
	from       string
	to         []string
	authFails  int // failed AUTH attempts in this session
}

// authDelay is the wait before answering a failed AUTH; it doubles with
// every further failure in the session (capped at 16×), so guessing
// passwords over one connection gets slow fast while a user who mistypes
// once barely notices. A test seam.
var authDelay = time.Second

// AuthMechanisms implements smtp.AuthSession: nothing is advertised
// before TLS (RFC 4954 §4: PLAIN and LOGIN send the password as is).
func (s *session) AuthMechanisms() []string {
	if !s.tls && !s.insecureOK {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession. An address locked out for failed
// attempts is refused before it sends a password.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.tls && !s.insecureOK {
		return nil, errEncryption
	}
	if s.srv.auth.ipLocked(s.client) {
		s.srv.log.Warn("submission login refused: address locked out", "remote", s.remote.String())
		return nil, errAuthLocked
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 §2: acting as another identity is not offered.
			if identity != "" && identity != username {
				return s.authFailed(username, "authorization identity differs")
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: s.login}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) login(username, password string) error {
	// Checked again here: sessions from one address run in parallel.
	if s.srv.auth.ipLocked(s.client) {
		s.srv.log.Warn("submission login refused: address locked out", "user", username, "remote", s.remote.String())
		return errAuthLocked
	}
	if s.srv.auth.userLocked(username, s.client) {
		s.srv.log.Warn("submission login refused: user locked out for this address", "user", username, "remote", s.remote.String())
		return errAuthLocked
	}
	u := s.srv.users.check(username, password)
	if u == nil {
		return s.authFailed(username, "wrong name or password")
	}
	s.srv.auth.succeeded(s.client, u.name)
	s.user = u
	s.srv.log.Info("submission login", "user", u.name, "remote", s.remote.String(), "tls", s.tls)
	return nil
}

func (s *session) authFailed(username, why string) error {
	s.authFails++
	s.srv.log.Warn("submission login failed", "user", username, "remote", s.remote.String(), "why", why, "failures", s.authFails)
	ipLocked, userLocked := s.srv.auth.failed(s.client, username)
	if ipLocked {
		s.srv.log.Warn("submission: address locked out after failed logins", "remote", s.client,
			"failures", s.srv.cfg.AuthFailures.PerIP, "for", s.srv.cfg.AuthFailures.Window)
	}
	if userLocked {
		s.srv.log.Warn("submission: user locked out for new addresses after failed logins", "user", username,
			"failures", s.srv.cfg.AuthFailures.PerUser, "for", s.srv.cfg.AuthFailures.Window)
	}
	time.Sleep(authDelay << min(s.authFails-1, 4))
	return smtp.ErrAuthFailed // 535 5.7.8
}

// Mail implements smtp.Session: only an authenticated user, only from
// one of its domains. The null reverse-path is refused: applications
// submit new mail, not delivery reports.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == nil {
		return errAuthRequired
	}
	if from == "" {
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "A null sender is not accepted for submission")
	}
	addr, err := address.Normalize(from)
	if err != nil {
		return reply(553, smtp.EnhancedCode{5, 1, 7}, "Bad sender address: %v", err)
	}
	if !s.user.domains.Allows(addr) {
		s.srv.log.Warn("submission sender refused", "user", s.user.name, "from", addr)
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Sender <%s> is not in the domains %s may send for", addr, s.user.name)
	}
	if opts != nil && opts.Size > s.user.maxBytes {
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message size %d exceeds the limit of %d bytes", opts.Size, s.user.maxBytes)
	}
	s.from = addr
	return nil
}

// Rcpt implements smtp.Session. Each recipient becomes one job, so the
// per-user rate is charged here, one message per recipient; a recipient
// over the rate is deferred (4xx), the others in the transaction stand.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.user == nil { // go-smtp refuses RCPT without MAIL; belt and braces
		return errAuthRequired
	}
	addr, err := address.Normalize(to)
	if err != nil {
		return reply(501, smtp.EnhancedCode{5, 1, 3}, "Bad recipient address: %v", err)
	}
	// One job per distinct recipient, compared case-insensitively as
	// campaigns do (see streams.Job.RecordField).
	if slices.ContainsFunc(s.to, func(x string) bool { return strings.EqualFold(x, addr) }) {
		return nil
	}
	if s.user.limiter != nil && !s.user.limiter.Allow() {
		return reply(450, smtp.EnhancedCode{4, 7, 1}, "Rate limit of %g messages/s for %s exceeded; try again later", s.user.rate, s.user.name)
	}
	s.to = append(s.to, addr)
	return nil
}

// Data implements smtp.Session: it checks the message, stores it with
// one job per recipient and only then answers 250 with the job IDs.
func (s *session) Data(r io.Reader) (err error) {
	defer func() { metrics.Submission(err) }()
	if s.user == nil || s.from == "" || len(s.to) == 0 {
		return errAuthRequired
	}
	b, err := io.ReadAll(io.LimitReader(r, s.user.maxBytes+1))
	if err != nil {
		return err // go-smtp answers its own errors (552 for its size cap)
	}
	if int64(len(b)) > s.user.maxBytes {
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message exceeds the limit of %d bytes", s.user.maxBytes)
	}
	now := s.srv.now()
	raw, err := intake.PrepareRaw(b, now)
	if err != nil {
		return reply(554, smtp.EnhancedCode{5, 6, 0}, "%v", err)
	}
	if err := s.checkAuthor(raw); err != nil {
		return err
	}
	msg := append(received(s, now), raw.Msg...)

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	queued, err := s.srv.queue.Enqueue(ctx, s.from, s.to, func(string) ([]byte, error) { return msg, nil })
	if err != nil {
		// Jobs queued before the failure are delivered; the client is told
		// to retry, so those recipients may get the message twice.
		s.srv.log.Error("submission: queue message", "user", s.user.name, "from", s.from,
			"recipients", len(s.to), "queued", queued, "err", err)
		return errStore
	}
	lines := make([]string, len(queued))
	ids := make([]string, len(queued))
	for i, q := range queued {
		lines[i] = "queued as " + q.ID + " for <" + q.To + ">"
		ids[i] = q.ID
	}
	s.srv.log.Info("submission accepted", "user", s.user.name, "from", s.from, "recipients", len(queued),
		"bytes", len(msg), "ids", strings.Join(ids, ","))
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: strings.Join(lines, "\n")}
}

// checkAuthor refuses a message whose From (or Sender) header names an
// address outside the user's domains: the envelope check alone would let
// a user sign mail as any author, DKIM-signed for its own domain.
func (s *session) checkAuthor(raw *intake.Raw) error {
	for _, a := range raw.From {
		if !s.user.domains.Allows(a.Address) {
			return reply(550, smtp.EnhancedCode{5, 7, 1}, "From header <%s> is not in the domains %s may send for", a.Address, s.user.name)
		}
	}
	if raw.Sender != nil && !s.user.domains.Allows(raw.Sender.Address) {
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Sender header <%s> is not in the domains %s may send for", raw.Sender.Address, s.user.name)
	}
	return nil
}

// Reset implements smtp.Session.
func (s *session) Reset() { s.from, s.to = "", nil }

// Logout implements smtp.Session.
func (s *session) Logout() error { return nil }

var _ smtp.AuthSession = (*session)(nil)
