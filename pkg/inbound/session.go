package inbound

import (
	"errors"
	"io"
	"net"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/pkg/feedback"
)

// Replies (RFC 5321 §4.2.3, RFC 3463).
var (
	errRelay     = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: this server accepts no mail for that domain"}
	errUnknown   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errRate      = &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages from your address; slow down and try again later"}
	errNoRcpt    = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	errTakeLater = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Could not take the message now; try again later"}
)

// session is one SMTP session.
type session struct {
	srv  *Server
	ip   string
	from string
	to   []string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	ip := c.Conn().RemoteAddr().String()
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	return &session{srv: s, ip: ip}, nil
}

// Mail starts a transaction; each costs one of the client IP's tokens.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.srv.rate.allow(s.ip, s.srv.now()) {
		return errRate
	}
	s.from, s.to = from, nil
	return nil
}

// Rcpt takes only the return paths and FBL addresses.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.srv.accepts(to); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

// Data reads the message, classifies it for each recipient and answers
// 250 once the handler has taken every report.
func (s *session) Data(r io.Reader) error {
	if len(s.to) == 0 {
		return errNoRcpt
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se // 552 message too large
		}
		return err
	}
	now := s.srv.now()
	for _, rcpt := range s.to {
		rep, err := feedback.Parse(raw, rcpt)
		if err != nil || len(rep.Recipients) == 0 && rep.JobID == "" {
			// Not a report: accept and drop (no backscatter).
			s.srv.log.Debug("inbound: dropped a message that is no report", "ip", s.ip, "rcpt", rcpt, "bytes", len(raw))
			continue
		}
		ctx, cancel := contextTimeout(s.srv)
		err = s.srv.handler(ctx, Report{Report: *rep, RemoteIP: s.ip, MailFrom: s.from, RcptTo: rcpt, Size: len(raw), Received: now})
		cancel()
		if err != nil {
			s.srv.log.Warn("inbound: handler refused a report; the sender will retry", "ip", s.ip, "rcpt", rcpt, "err", err)
			return errTakeLater
		}
	}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
