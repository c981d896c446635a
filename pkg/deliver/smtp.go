package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/text"
)

// SMTPConfig configures outbound SMTP sessions. Zero fields take the
// defaults noted.
type SMTPConfig struct {
	Hostname string      // EHLO name; default os.Hostname()
	Resolver mx.Resolver // addresses of MX hosts; nil dials names with the system resolver

	// Timeouts after RFC 5321 §4.5.3.2. ConnectTimeout (30 s) is ours.
	ConnectTimeout   time.Duration
	CommandTimeout   time.Duration // 220 greeting, EHLO, STARTTLS, MAIL, RCPT, RSET: 5 min
	DataInitTimeout  time.Duration // reply to DATA: 2 min (never above CommandTimeout by default)
	DataBlockTimeout time.Duration // each write of message data: 3 min
	DataTimeout      time.Duration // reply to the final dot: 10 min

	// MaxMessagesPerConn bounds how many transactions one session carries
	// (100); Destination.MaxMessagesPerConn overrides it per send.
	MaxMessagesPerConn int
	IdleTimeout        time.Duration // close pooled sessions unused this long (30 s)
	MaxIdlePerHost     int           // idle sessions kept per host (10)

	// DisablePipelining sends one command per round trip even where
	// PIPELINING is offered, for receivers that mishandle it (Exim's
	// hosts_avoid_pipelining).
	DisablePipelining bool
	// DisableChunking sends the message after DATA, dot-stuffed, even
	// where CHUNKING (RFC 3030 BDAT) is offered with PIPELINING.
	DisableChunking bool

	// RequireTLS refuses plaintext delivery everywhere, as
	// Destination.RequireTLS does for one destination.
	RequireTLS bool
	// TLSFallbackTTL is how long a host whose STARTTLS handshake failed
	// gets plaintext without trying TLS again (30 min).
	TLSFallbackTTL time.Duration
	// TLSConfig, when set, is the base client config (e.g. with RootCAs to
	// verify); nil means opportunistic TLS without verification.
	TLSConfig *tls.Config
	Logger    *slog.Logger // default slog.Default()
}

func (c *SMTPConfig) defaults() {
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \r\n") {
		c.Hostname = "localhost"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, 30*time.Second)
	def(&c.CommandTimeout, 5*time.Minute)
	def(&c.DataInitTimeout, min(2*time.Minute, c.CommandTimeout))
	def(&c.DataBlockTimeout, 3*time.Minute)
	def(&c.DataTimeout, 10*time.Minute)
	def(&c.IdleTimeout, 30*time.Second)
	def(&c.TLSFallbackTTL, 30*time.Minute)
	if c.MaxMessagesPerConn <= 0 {
		c.MaxMessagesPerConn = 100
	}
	if c.MaxIdlePerHost <= 0 {
		c.MaxIdlePerHost = 10
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// SMTP delivers messages over pooled SMTP sessions, one pool per (source,
// host).
// It is safe for concurrent use; each session carries one transaction at a
// time.
type SMTP struct {
	cfg    SMTPConfig
	dialer net.Dialer

	mu       sync.Mutex
	idle     map[string][]*conn   // by Source.poolKey(Host.Addr())
	quitting map[Slots]int        // sessions saying QUIT, by their slots
	live     map[string]int       // live sessions by Host.Addr(), and by pool key when from a Source
	noTLS    map[string]time.Time // hosts whose handshake failed, until when
	closed   bool
	stop     chan struct{} // stops the janitor; nil while none runs
	wg       sync.WaitGroup
}

// NewSMTP returns a sender with cfg (zero fields take defaults).
func NewSMTP(cfg SMTPConfig) *SMTP {
	cfg.defaults()
	return &SMTP{cfg: cfg, idle: map[string][]*conn{}, quitting: map[Slots]int{}, live: map[string]int{}, noTLS: map[string]time.Time{}}
}

// Send delivers msg to env.To at d, trying d's hosts in order (RFC 5321
// §5.1) until one gives an answer about the message: a host that cannot be
// reached, greets with 4xx/5xx or fails a required TLS is skipped. msg is
// sent with CRLF line ends, and dot-stuffed when it goes after DATA,
// whatever it holds. Cancelling
// ctx interrupts the attempt at once (Outcome.Reason outcome.Interrupted).
func (s *SMTP) Send(ctx context.Context, d Destination, env Envelope, msg []byte) outcome.Outcome {
	return s.SendParts(ctx, d, env, [][]byte{msg})
}

// SendParts is Send for a message given as pieces written in turn (a
// message.Message's Parts, with DKIM-Signature fields in front): they go
// on the wire as they are (after BDAT, or dot-stuffed on the way after
// DATA), never joined into one slice. Pieces that are not CRLF-canonical
// together are joined and canonicalised first, as Send does.
func (s *SMTP) SendParts(ctx context.Context, d Destination, env Envelope, parts [][]byte) outcome.Outcome {
	out := s.send(ctx, d, env, parts)
	if out.Source == "" {
		out.Source = d.Source.Name
	}
	return out
}

func (s *SMTP) send(ctx context.Context, d Destination, env Envelope, parts [][]byte) outcome.Outcome {
	p, out, ok := prepare(env, parts)
	if !ok {
		return out
	}
	if len(d.Hosts) == 0 {
		return outcome.Outcome{Status: outcome.Deferred, Scope: outcome.ScopeDomain, Stage: outcome.StageRoute, Enhanced: "4.4.4",
			Text: fmt.Sprintf("no hosts to deliver to for %q", d.Domain)}
	}
	needTLS := d.RequireTLS || s.cfg.RequireTLS
	limit := d.MaxMessagesPerConn
	if limit <= 0 {
		limit = s.cfg.MaxMessagesPerConn
	}
	var last outcome.Outcome
	for _, h := range d.Hosts {
		if err := ctx.Err(); err != nil {
			return canceled(outcome.StageConnect, h.Name, err)
		}
		out, next := s.sendHost(ctx, d, h, p, needTLS, limit)
		if !next {
			return out
		}
		// Report the most telling failure: a reply beats a silent host.
		if last.Code == 0 || out.Code != 0 {
			last = out
		}
	}
	return last
}

// sendHost runs one transaction on h. next reports that h never reached
// the transaction, so the next MX should be tried.
func (s *SMTP) sendHost(ctx context.Context, d Destination, h Host, p *prepared, needTLS bool, limit int) (out outcome.Outcome, next bool) {
	src := d.Source
	for {
		c := s.take(src.poolKey(h.Addr()), needTLS, limit, d.Slots)
		reused := c != nil
		if c == nil {
			// A session takes one of its key's connection slots from
			// dial to close; none free is the key's answer, not the
			// host's: the next MX would not be tried with another.
			if out, ok := s.slot(ctx, d.Slots, h); !ok {
				return out, false
			}
			if c, out = s.dial(ctx, src, h, needTLS); c == nil {
				if d.Slots != nil {
					d.Slots.Release()
				}
				return out, out.Reason != outcome.Interrupted
			}
			c.slots = d.Slots
		}
		stop := c.bind(ctx)
		out, state := c.transact(p, reused)
		stop()
		switch state {
		case txStale:
			c.close()
			continue // only pooled sessions go stale, so this ends
		case txBroken:
			c.close()
		default:
			s.put(c, limit)
		}
		return out, false
	}
}

// prepare validates the envelope and canonicalises the message once.
func prepare(env Envelope, parts [][]byte) (*prepared, outcome.Outcome, bool) {
	if !validAddr(env.To) || env.To == "" {
		return nil, outcome.Outcome{Status: outcome.Bounced, Scope: outcome.ScopeRecipient, Stage: outcome.StageBuild, Enhanced: "5.1.3",
			Text: fmt.Sprintf("invalid recipient address %q", text.Clip(env.To, 80))}, false
	}
	if !validAddr(env.From) {
		return nil, outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeSender, Stage: outcome.StageBuild, Enhanced: "5.1.7",
			Text: fmt.Sprintf("invalid sender address %q", text.Clip(env.From, 80))}, false
	}
	if dataSize(parts) == 0 {
		return nil, outcome.Outcome{Status: outcome.Failed, Scope: outcome.ScopeMessage, Stage: outcome.StageBuild, Enhanced: "5.6.0",
			Text: "empty message"}, false
	}
	if !text.IsCRLFParts(parts) {
		parts = [][]byte{text.CRLF(bytes.Join(parts, nil))}
	}
	eightBit := false
	for _, part := range parts {
		if eightBit = has8bit(part); eightBit {
			break
		}
	}
	// The envelope goes out with A-label domains wherever the local part
	// is ASCII, so an internationalised domain needs no SMTPUTF8.
	env.From, env.To = wireAddr(env.From), wireAddr(env.To)
	return &prepared{
		env:        env,
		data:       parts,
		size:       dataSize(parts), // after canonicalising
		eightBit:   eightBit,
		utf8Addr:   has8bit([]byte(env.From)) || has8bit([]byte(env.To)),
		utf8Header: eightBit && has8bit(header(parts)),
	}, outcome.Outcome{}, true
}

func dataSize(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// validAddr rejects what would break the command line: controls (CR, LF
// would inject commands), spaces outside quotes and angle brackets.
func validAddr(a string) bool {
	quoted := false
	for i := 0; i < len(a); i++ {
		switch b := a[i]; {
		case b < 0x20 || b == 0x7f || b == '<' || b == '>':
			return false
		case b == '"':
			quoted = !quoted
		case b == ' ' && !quoted:
			return false
		}
	}
	return true
}
