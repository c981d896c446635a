package deliver

import (
	"context"
	"strconv"
	"testing"

	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// namedRows are rows 33–49 of provider-responses.md ("which reputation a
// reply names"), with the variable parts filled in: the status a reply
// gets and the scope it names. Row 48 (Yahoo dropping the connection
// without a reply) has no text to classify.
var namedRows = []struct {
	row    string
	reply  string
	status outcome.Status
	scope  outcome.Scope
}{
	{"33", "421 4.7.28 Gmail has detected an unusual rate of email. To protect our users from spam, email has been temporarily rate limited.", outcome.Deferred, outcome.ScopeProvider},
	{"34", "421 4.7.28 Gmail has detected an unusual rate of email originating from your IP address 192.0.2.1. To protect our users from spam, email sent from your IP address has been temporarily rate limited.", outcome.Deferred, outcome.ScopeIP},
	{"35", "421 4.7.28 Gmail has detected an unusual rate of unsolicited email originating from your IP Netblock 192.0.2.0/24. To protect our users from spam, email sent from your IP Netblock has been temporarily rate limited.", outcome.Deferred, outcome.ScopeProvider},
	{"36", "421 4.7.28 Gmail has detected an unusual rate of unsolicited email originating from your DKIM domain example.com. To protect our users from spam, email sent from your domain has been temporarily rate limited.", outcome.Deferred, outcome.ScopeSendingDomain},
	{"37", "421 4.7.28 Gmail has detected an unusual rate of unsolicited email originating from your SPF domain bounce.example.com. To protect our users from spam, email sent from your domain has been temporarily rate limited.", outcome.Deferred, outcome.ScopeSendingDomain},
	{"38", "421 4.7.28 Gmail has detected an unusual rate of unsolicited email containing one of your URL domains. To protect our users from spam, email with the URL has been temporarily rate limited.", outcome.Deferred, outcome.ScopeProvider},
	{"39", "421 4.7.28 Gmail has detected an unusual amount of unsolicited email originating from your IP address. To protect our users from spam, email sent from your IP address has been temporarily blocked.", outcome.Deferred, outcome.ScopeIP},
	{"40", "421 4.7.28 Gmail has detected this sender exceeded the quota for sending messages that have the same Message-ID:. To protect our users from spam, the message has been temporarily rejected.", outcome.Deferred, outcome.ScopeMessage},
	{"41/spf", "421 4.7.27 Your email has been rate limited because SPF authentication didn't pass for this message.", outcome.Deferred, outcome.ScopeSender},
	{"41/dkim", "421 4.7.30 Your email has been rate limited because DKIM authentication didn't pass for this message.", outcome.Deferred, outcome.ScopeSender},
	{"42", "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", outcome.Deferred, outcome.ScopeIP},
	{"43", "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", outcome.Failed, outcome.ScopeIP},
	{"44/rp-001", "421 RP-001 (BAY004-MC1F4) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. We have limits for how many messages can be sent per hour and per day.", outcome.Deferred, outcome.ScopeIP},
	{"44/rp-002", "421 RP-002 (BAY004-MC1F4) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. We have limits for how many messages can be sent on this connection.", outcome.Deferred, outcome.ScopeIP},
	{"44/rp-003", "421 RP-003 (BAY004-MC1F4) Unfortunately, some messages from 192.0.2.1 weren't sent. Please try again. We have limits for the number of connections.", outcome.Deferred, outcome.ScopeIP},
	{"45", "550 5.7.515 Access denied, sending domain example.com does not meet the required authentication level.", outcome.Failed, outcome.ScopeSendingDomain},
	{"46", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", outcome.Deferred, outcome.ScopeIP},
	{"47/tss05", "421 4.7.0 [TSS05] Messages from 192.0.2.1 temporarily deferred due to user complaints", outcome.Deferred, outcome.ScopeIP},
	{"47/tss09", "553 5.7.2 [TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed.", outcome.Failed, outcome.ScopeIP},
	{"49/recipient", "421 4.7.1 Messages to someone@icloud.com deferred due to excessive volume. Try again later.", outcome.Deferred, outcome.ScopeRecipient},
	{"49/service", "451 4.7.1 Service unavailable", outcome.Deferred, outcome.ScopeProvider},
	{"49/cs01", "550 5.7.1 [CS01] Message rejected due to local policy.", outcome.Failed, outcome.ScopeSender},
	{"49/hcm1", "550 5.7.1 [HCM1] Message rejected due to local policy.", outcome.Failed, outcome.ScopeSender},
	// Gmail's IP twin of row 2.
	{"2/ip", "421 4.7.0 This message is suspicious due to the very low reputation of the sending IP address.", outcome.Deferred, outcome.ScopeIP},
	// Busy replies that quote our IP are about the provider, not the IP.
	{"17", "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77719)", outcome.Deferred, outcome.ScopeProvider},
}

// TestScopeNamedByReply checks rows 33–49 through Classify and again as
// real replies to RCPT over SMTP.
func TestScopeNamedByReply(t *testing.T) {
	byRcpt := map[string]error{}
	for i, r := range namedRows {
		code, enh, text := splitReply(t, r.reply)
		byRcpt["r"+strconv.Itoa(i)+"@example.test"] = smtptest.Reply(code, enh, text)
	}
	srv := smtptest.Start(t, smtptest.Options{Rcpt: func(to string) error { return byRcpt[to] }})
	s := NewSMTP(SMTPConfig{Hostname: "out.sluice.test"})
	defer s.Close()
	for i, r := range namedRows {
		t.Run("row"+r.row, func(t *testing.T) {
			code, enh, text := splitReply(t, r.reply)
			got := Classify(code, enh, text)
			if got.Status != r.status || got.Scope != r.scope {
				t.Fatalf("Classify(%q) = %s/%s; want %s/%s", r.reply, got.Status, got.Scope, r.status, r.scope)
			}
			wire := s.Send(context.Background(), local(srv), Envelope{From: "b@sluice.test", To: "r" + strconv.Itoa(i) + "@example.test"}, testMsg)
			if wire.Status != r.status || wire.Scope != r.scope || wire.Stage != outcome.StageRcpt {
				t.Fatalf("over SMTP: %s/%s at %s (%q); want %s/%s", wire.Status, wire.Scope, wire.Stage, wire.Text, r.status, r.scope)
			}
		})
	}
}

// A refusal naming our IP at the greeting is kept as a verdict on us (not
// turned into an unreachable host): TSS04 defers that source, S3150 fails.
func TestGreetingNamingOurIP(t *testing.T) {
	for _, c := range []struct {
		greeting string
		status   outcome.Status
	}{
		{"421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints", outcome.Deferred},
		{"554 5.7.1 Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", outcome.Failed},
	} {
		srv := smtptest.Start(t, smtptest.Options{Greeting: c.greeting})
		out := NewSMTP(SMTPConfig{}).Send(context.Background(), local(srv), testEnv, testMsg)
		if out.Status != c.status || out.Scope != outcome.ScopeIP || out.Stage != outcome.StageGreeting {
			t.Errorf("%q: %s/%s at %s; want %s/ip at greeting", c.greeting, out.Status, out.Scope, out.Stage, c.status)
		}
	}
}
