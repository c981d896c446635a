package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/sluice-mta/sluice/pkg/outcome"
)

// tlsMode is how a new session treats STARTTLS.
type tlsMode int

const (
	tlsTry  tlsMode = iota // use it when offered (RFC 7435 opportunistic)
	tlsSkip                // this host failed the handshake lately: plaintext
	tlsMust                // never carry mail in plaintext
)

// dial opens a ready session from src to h: bound to src's address,
// connected, greeted, src's EHLO name said and, where possible, under
// TLS. On failure it returns the outcome to report.
func (s *SMTP) dial(ctx context.Context, src Source, h Host, needTLS bool) (*conn, outcome.Outcome) {
	local, err := src.localAddr()
	if err != nil {
		return nil, outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeSender, Stage: outcome.StageConnect, Host: h.Name,
			Enhanced: "4.4.1", Text: err.Error()}
	}
	addrs, err := s.addrs(ctx, h)
	if err == nil {
		all := addrs
		addrs = addrs[:0:0]
		for _, a := range all {
			if sameFamily(local, a) {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			err = fmt.Errorf("%s has no address of source %s's family (%s)", h.Name, src.Name, src.Address)
		}
	}
	if err != nil {
		return nil, outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeHost, Stage: outcome.StageConnect, Host: h.Name,
			Enhanced: "4.4.3", Text: err.Error()}
	}
	mode := tlsTry
	switch {
	case needTLS:
		mode = tlsMust
	case s.tlsBroken(h.Addr()):
		mode = tlsSkip
	}
	var out outcome.Outcome
	for _, addr := range addrs {
		var c *conn
		var tlsFailed bool
		c, out, tlsFailed = s.open(ctx, src, local, h, addr, mode)
		if c == nil && tlsFailed && mode == tlsTry {
			// RFC 7435 §3: a failed handshake must not stop delivery;
			// retry in plaintext and skip TLS with this host for a while
			// rather than fail the same way on every session.
			s.rememberTLSBroken(h.Addr())
			s.cfg.Logger.Warn("STARTTLS failed; falling back to plaintext",
				slog.String("host", h.Name), slog.String("addr", addr), slog.String("error", out.Text),
				slog.Duration("for", s.cfg.TLSFallbackTTL))
			c, out, _ = s.open(ctx, src, local, h, addr, tlsSkip)
		}
		if c != nil || out.Stage != outcome.StageConnect || ctx.Err() != nil {
			return c, out
		}
	}
	return nil, out
}

// addrs lists the addresses to dial for h: IP literals and routed hosts
// as they are (the system resolver handles routed names), MX hosts through
// the configured mx.Resolver.
func (s *SMTP) addrs(ctx context.Context, h Host) ([]string, error) {
	if net.ParseIP(h.Name) != nil || h.Routed || s.cfg.Resolver == nil {
		return []string{h.Addr()}, nil
	}
	ips, err := s.cfg.Resolver.LookupIP(ctx, h.Name)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", h.Name, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", h.Name)
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = joinHostPort(ip.String(), h.Port)
	}
	return out, nil
}

// open connects to addr and runs the session up to the first MAIL.
// tlsFailed reports a failed STARTTLS, after which the connection is gone.
func (s *SMTP) open(ctx context.Context, src Source, local *net.TCPAddr, h Host, addr string, mode tlsMode) (c *conn, out outcome.Outcome, tlsFailed bool) {
	fail := func(stage outcome.Stage, enh, format string, args ...any) outcome.Outcome {
		return outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeHost, Stage: stage, Host: h.Name, Enhanced: enh,
			Text: fmt.Sprintf(format, args...)}
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	dialer := s.dialer
	if local != nil {
		dialer.LocalAddr = local
	}
	raw, err := dialer.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, canceled(outcome.StageConnect, h.Name, ctx.Err()), false
		}
		from := ""
		if local != nil {
			from = fmt.Sprintf(" from source %s (%s)", src.Name, src.Address)
		}
		return nil, fail(outcome.StageConnect, "4.4.1", "connect to %s (%s)%s: %v", h.Name, addr, from, err), false
	}
	hostKey, key := h.Addr(), src.poolKey(h.Addr())
	s.track(hostKey, key, 1)
	c = newConn(raw, &s.cfg, h, key, func() { s.track(hostKey, key, -1) })
	stop := c.bind(ctx)
	defer stop()
	ioFail := func(stage outcome.Stage, what string, err error) outcome.Outcome {
		c.close()
		return c.ioOutcome(stage, what, s.cfg.CommandTimeout, err)
	}

	r, err := c.readReply(s.cfg.CommandTimeout) // RFC 5321 §4.5.3.2.1: 5 min for the 220
	if err != nil {
		return nil, ioFail(outcome.StageGreeting, "the greeting", err), false
	}
	if r.code != 220 {
		c.close() // 421 closes the channel; after 554 there is nothing to say
		return nil, r.outcome(outcome.StageGreeting, h.Name), false
	}
	ehlo := src.ehlo(s.cfg.Hostname)
	if r, err = c.hello(ehlo); err != nil {
		return nil, ioFail(outcome.StageHello, "EHLO", err), false
	}
	if r.code != 250 {
		c.close()
		return nil, r.outcome(outcome.StageHello, h.Name), false
	}
	if mode == tlsSkip {
		return c, outcome.Outcome{}, false
	}
	if !c.has("STARTTLS") {
		if mode == tlsMust {
			c.quit()
			return nil, fail(outcome.StageTLS, "4.7.4", "TLS is required, but %s (%s) does not offer STARTTLS", h.Name, addr), false
		}
		return c, outcome.Outcome{}, false
	}
	if err := c.startTLS(s.cfg.TLSConfig, ehlo); err != nil {
		if errors.Is(err, errTLSRefused) && mode == tlsTry {
			return c, outcome.Outcome{}, false // still plaintext and healthy
		}
		c.close()
		if ctx.Err() != nil {
			return nil, canceled(outcome.StageTLS, h.Name, ctx.Err()), false
		}
		return nil, fail(outcome.StageTLS, "4.7.5", "TLS with %s (%s) failed: %v", h.Name, addr, err), true
	}
	s.cfg.Logger.Debug("smtp session open", slog.String("host", h.Name), slog.String("addr", addr), slog.Bool("tls", c.tls),
		slog.String("source", src.Name), slog.String("local", raw.LocalAddr().String()))
	return c, outcome.Outcome{}, false
}

// ioOutcome reports an I/O failure: a cancelled context, a timeout or a
// dropped connection. None of them says anything about the message.
func (c *conn) ioOutcome(stage outcome.Stage, what string, timeout time.Duration, err error) outcome.Outcome {
	c.mu.Lock()
	cancelled := c.ctx != nil && c.ctx.Err() != nil
	c.mu.Unlock()
	if cancelled {
		return canceled(stage, c.host, err)
	}
	o := outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeHost, Stage: stage, Host: c.host, Enhanced: "4.4.2"}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		o.Text = fmt.Sprintf("timeout: no reply from %s to %s within %s", c.host, what, timeout)
	} else {
		o.Text = fmt.Sprintf("connection to %s lost at %s: %v", c.host, what, err)
	}
	return o
}

// canceled is the outcome of an attempt cut short by its context: sluice
// stopped it, so it says nothing about host or message.
func canceled(stage outcome.Stage, host string, err error) outcome.Outcome {
	return outcome.Outcome{Status: outcome.Deferred, Stage: stage, Host: host, Reason: outcome.Interrupted,
		Text: fmt.Sprintf("attempt interrupted: %v", err)}
}
