package deliver

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// providerRows are rows 1–29 of /work/shared/docs/provider-responses.md:
// real replies and the status and scope they must get. The scope is the
// reputation the reply names (the document's second table, rows 33–49):
// where the first table says "provider" for a reply that names our IP or
// our sending domain, the narrower scope is the one asserted.
var providerRows = []struct {
	row    int
	reply  string
	status outcome.Status
	scope  outcome.Scope
}{
	{1, "421 4.7.28 Gmail has detected an unusual rate of unsolicited email originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", outcome.Deferred, outcome.ScopeIP}, // names the source IP (row 34)
	{2, "421 4.7.0 … suspicious due to the very low reputation of the sending domain …", outcome.Deferred, outcome.ScopeSendingDomain},                                                                                                               // names the sending domain's reputation
	{3, "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later point in time.", outcome.Deferred, outcome.ScopeRecipient},
	{4, "452 4.2.2 The recipient's inbox is out of storage space. Please direct the recipient to …", outcome.Deferred, outcome.ScopeRecipient},
	{5, "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos …", outcome.Bounced, outcome.ScopeRecipient},
	{6, "550 5.2.1 The email account that you tried to reach is inactive.", outcome.Bounced, outcome.ScopeRecipient},
	{7, "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy. …", outcome.Failed, outcome.ScopeSender},
	{8, "421 4.7.32 Your email has been rate limited because the From: header (RFC5322) in this message isn't aligned with either the authenticated SPF or DKIM organizational domain.", outcome.Deferred, outcome.ScopeSender},
	{9, "421 4.7.40 Your email has been rate limited because DMARC is not implemented for the sending domain.", outcome.Deferred, outcome.ScopeSender},
	{10, "421 4.4.5 Server busy, try again later.", outcome.Deferred, outcome.ScopeProvider},
	{11, "452 4.5.3 Your message has too many recipients.", outcome.Deferred, outcome.ScopeTransaction},
	{12, "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", outcome.Deferred, outcome.ScopeIP}, // "Messages from IP" (row 46)
	{13, "553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed.", outcome.Failed, outcome.ScopeIP},                                                                    // row 47: stop that source
	{14, "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta1234.mail.gq1.yahoo.com", outcome.Bounced, outcome.ScopeRecipient},
	{15, "421 Max message per connection reached, closing transmission channel", outcome.Deferred, outcome.ScopeConnection},
	{16, "451 Message temporarily deferred due to resource constraints - [#4.16.1]", outcome.Deferred, outcome.ScopeProvider},
	{17, "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)", outcome.Deferred, outcome.ScopeProvider},
	{18, "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", outcome.Deferred, outcome.ScopeIP},                                                                        // row 42
	{19, "421 RP-001 (…) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. We have limits for how many messages can be sent per hour and per day.", outcome.Deferred, outcome.ScopeIP},      // row 44
	{20, "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", outcome.Failed, outcome.ScopeIP}, // row 43
	{21, "550 5.7.515 Access denied, sending domain example.com does not meet the required authentication level.", outcome.Failed, outcome.ScopeSendingDomain},                                                        // row 45
	{22, "554 5.2.122 The recipient has exceeded their limit for the number of messages they can receive per hour.", outcome.Deferred, outcome.ScopeRecipient},
	{23, "550 5.5.0 Requested action not taken: mailbox unavailable.", outcome.Bounced, outcome.ScopeRecipient},
	{24, "421 4.7.1 Messages to someone@icloud.com deferred due to excessive volume. Try again later.", outcome.Deferred, outcome.ScopeRecipient},
	{25, "550 5.7.1 [CS01] Message rejected due to local policy.", outcome.Failed, outcome.ScopeSender},
	{26, "550 5.1.1 <someone@icloud.com>: user does not exist", outcome.Bounced, outcome.ScopeRecipient},
	{27, "421 … [Too many sessions opened]", outcome.Deferred, outcome.ScopeConnection}, // at greeting
	{28, "554 … BL000001 … listed at Spamhaus ZEN", outcome.Failed, outcome.ScopeIP},    // Spamhaus ZEN lists the connecting IP
	{29, "454 Throttling failure: Maximum sending rate exceeded.", outcome.Deferred, outcome.ScopeProvider},
}

// splitReply parses "550 5.1.1 text" the way a reply line arrives.
func splitReply(t *testing.T, s string) (int, string, string) {
	t.Helper()
	code, err := strconv.Atoi(s[:3])
	if err != nil {
		t.Fatalf("bad reply %q", s)
	}
	text := s[4:]
	enh := leadingEnhanced(text)
	if enh != "" {
		text = strings.TrimPrefix(text[len(enh):], " ")
	}
	return code, enh, text
}

// TestProviderResponses checks all 32 rows of provider-responses.md:
// rows 1–29 through Classify and again as real replies over SMTP (row 27
// as a greeting, the rest to RCPT), row 30 through real sessions, rows
// 31–32 through Router.Resolve.
func TestProviderResponses(t *testing.T) {
	byRcpt := map[string]error{}
	for _, r := range providerRows {
		code, enh, text := splitReply(t, r.reply)
		byRcpt["row"+strconv.Itoa(r.row)+"@example.test"] = smtptest.Reply(code, enh, text)
	}
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error { return byRcpt[to] }})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test"})
	defer s.Close()

	for _, r := range providerRows {
		t.Run("row"+strconv.Itoa(r.row), func(t *testing.T) {
			code, enh, text := splitReply(t, r.reply)
			got := Classify(code, enh, text)
			if got.Status != r.status || got.Scope != r.scope || got.Code != code || got.Enhanced != enh {
				t.Fatalf("Classify(%q) = %s/%s code %d enh %q; want %s/%s", r.reply, got.Status, got.Scope, got.Code, got.Enhanced, r.status, r.scope)
			}
			var wire outcome.Outcome
			if r.row == 27 {
				greet := smtptest.Start(t, smtptest.Options{Greeting: r.reply})
				wire = s.Send(context.Background(), local(greet), Envelope{From: "b@sluice.test", To: "a@example.test"}, testMsg)
				if wire.Stage != outcome.StageGreeting {
					t.Fatalf("stage %s, want greeting", wire.Stage)
				}
			} else {
				wire = s.Send(context.Background(), local(srv), Envelope{From: "b@sluice.test", To: "row" + strconv.Itoa(r.row) + "@example.test"}, testMsg)
				if wire.Stage != outcome.StageRcpt {
					t.Fatalf("stage %s, want rcpt (%v)", wire.Stage, wire)
				}
			}
			if wire.Status != r.status || wire.Scope != r.scope || wire.Code != code || wire.Enhanced != enh {
				t.Fatalf("over SMTP: %s/%s code %d enh %q (%q); want %s/%s", wire.Status, wire.Scope, wire.Code, wire.Enhanced, wire.Text, r.status, r.scope)
			}
		})
	}
	if srv.Count() != 0 {
		t.Fatalf("receiver accepted %d messages; every RCPT was refused", srv.Count())
	}

	t.Run("row30", func(t *testing.T) {
		for name, probe := range map[string]func(t *testing.T) outcome.Outcome{
			"refused": func(t *testing.T) outcome.Outcome {
				return NewSMTP(SMTPConfig{}).Send(context.Background(), Destination{Hosts: []Host{{Name: "127.0.0.1", Port: closedPort(t)}}}, testEnv, testMsg)
			},
			"timeout": func(t *testing.T) outcome.Outcome {
				port := silentListener(t)
				s := NewSMTP(SMTPConfig{CommandTimeout: 150 * time.Millisecond})
				return s.Send(context.Background(), Destination{Hosts: []Host{{Name: "127.0.0.1", Port: port}}}, testEnv, testMsg)
			},
			"tls": func(t *testing.T) outcome.Outcome {
				srv := smtptest.Start(t, smtptest.Options{TLS: brokenTLS()})
				d := local(srv)
				d.RequireTLS = true
				out := NewSMTP(SMTPConfig{}).Send(context.Background(), d, testEnv, testMsg)
				if srv.Count() != 0 {
					t.Fatalf("message delivered despite failed TLS")
				}
				return out
			},
		} {
			out := probe(t)
			if out.Status != outcome.Deferred || out.Scope != outcome.ScopeHost {
				t.Errorf("%s: %v scope %s; want deferred/host", name, out, out.Scope)
			}
		}
	})

	for _, c := range []struct {
		row    int
		name   string
		err    error
		status outcome.Status
		enh    string
	}{
		{31, "nxdomain", &mx.Error{Domain: "gone.test", Permanent: true, Enhanced: "5.1.2", Msg: "no such domain"}, outcome.Bounced, "5.1.2"},
		{31, "null MX", &mx.Error{Domain: "gone.test", Permanent: true, Enhanced: "5.1.10", Msg: "null MX (RFC 7505)"}, outcome.Bounced, "5.1.10"},
		{32, "servfail", &mx.Error{Domain: "gone.test", Enhanced: "4.4.3", Msg: "SERVFAIL"}, outcome.Deferred, "4.4.3"},
		{32, "timeout", context.DeadlineExceeded, outcome.Deferred, "4.4.3"},
	} {
		t.Run("row"+strconv.Itoa(c.row)+"/"+c.name, func(t *testing.T) {
			r := &Router{Resolver: errResolver{c.err}}
			_, out, ok := r.Resolve(context.Background(), "gone.test")
			if ok || out.Status != c.status || out.Scope != outcome.ScopeDomain || out.Enhanced != c.enh || out.Stage != outcome.StageRoute {
				t.Fatalf("Resolve = ok %v, %v scope %s stage %s; want %s/domain %s", ok, out, out.Scope, out.Stage, c.status, c.enh)
			}
		})
	}
}

func TestClassifyEdges(t *testing.T) {
	for _, c := range []struct {
		code      int
		enh, text string
		status    outcome.Status
		scope     outcome.Scope
		retry     time.Duration
	}{
		{550, "", "User unknown", outcome.Bounced, outcome.ScopeRecipient, 0},
		{550, "", "No such user here", outcome.Bounced, outcome.ScopeRecipient, 0},
		{550, "", "<x@example.test>: Recipient address rejected: User unknown in virtual mailbox table", outcome.Bounced, outcome.ScopeRecipient, 0},
		{550, "", "5.1.1 <x@example.test>: mailbox does not exist", outcome.Bounced, outcome.ScopeRecipient, 0}, // code inside the text
		{554, "", "Transaction failed", outcome.Failed, outcome.ScopeMessage, 0},
		{550, "", "Sender address does not exist", outcome.Failed, outcome.ScopeMessage, 0},
		{550, "", "Administrative prohibition", outcome.Failed, outcome.ScopeMessage, 0},
		{550, "5.7.1", "Service unavailable; user does not exist in our blocklist policy", outcome.Failed, outcome.ScopeSender, 0},
		{554, "5.7.1", "<x@example.test>: Relay access denied", outcome.Failed, outcome.ScopeDomain, 0},
		{550, "5.1.2", "Domain not found", outcome.Bounced, outcome.ScopeDomain, 0},
		{550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281)", outcome.Bounced, outcome.ScopeRecipient, 0},
		{552, "5.2.2", "Mailbox full", outcome.Deferred, outcome.ScopeRecipient, 0},
		{552, "5.3.4", "Message size exceeds fixed limit", outcome.Failed, outcome.ScopeMessage, 0},
		{552, "", "Too many recipients", outcome.Deferred, outcome.ScopeTransaction, 0},
		{421, "5.7.32", "rate limited: From header not aligned", outcome.Deferred, outcome.ScopeSender, 0}, // 4xx code, 5.x enhanced
		{451, "4.7.1", "Greylisted, please try again in 5 minutes", outcome.Deferred, outcome.ScopeRecipient, 5 * time.Minute},
		{421, "4.7.0", "Too many messages, retry after 30 seconds", outcome.Deferred, outcome.ScopeProvider, 30 * time.Second},
		{450, "4.7.1", "Rate limited, try again in 2 hours", outcome.Deferred, outcome.ScopeProvider, 2 * time.Hour},
		{451, "4.3.0", "Please try again in 999 hours", outcome.Deferred, outcome.ScopeProvider, 24 * time.Hour},
		{421, "4.7.0", "Too many concurrent SMTP connections from this IP", outcome.Deferred, outcome.ScopeConnection, 0},
		{250, "2.0.0", "OK queued as 1234", outcome.Delivered, outcome.ScopeNone, 0},
		{354, "", "go ahead", outcome.Deferred, outcome.ScopeHost, 0},
	} {
		got := Classify(c.code, c.enh, c.text)
		if got.Status != c.status || got.Scope != c.scope || got.RetryAfter != c.retry {
			t.Errorf("Classify(%d, %q, %q) = %s/%s retry %s; want %s/%s retry %s",
				c.code, c.enh, c.text, got.Status, got.Scope, got.RetryAfter, c.status, c.scope, c.retry)
		}
	}
}

// A refusal at MAIL FROM predates RCPT: it cannot suppress the recipient.
func TestMailStageRefusalIsNotABounce(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{Mail: func(string) error { return smtptest.Reply(550, "5.1.1", "no such user") }})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test"})
	defer s.Close()
	out := s.Send(context.Background(), local(srv), testEnv, testMsg)
	if out.Status != outcome.Failed || out.Scope != outcome.ScopeSender || out.Stage != outcome.StageMail || out.Code != 550 {
		t.Fatalf("%v scope %s stage %s; want failed/sender at mail", out, out.Scope, out.Stage)
	}
}

type errResolver struct{ err error }

func (r errResolver) LookupMX(context.Context, string) ([]string, error) { return nil, r.err }
func (r errResolver) LookupIP(context.Context, string) ([]net.IP, error) { return nil, r.err }

var errNoCert = errors.New("no certificate for you")

// brokenTLS offers STARTTLS and then fails every handshake.
func brokenTLS() *tls.Config {
	return &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errNoCert }}
}
