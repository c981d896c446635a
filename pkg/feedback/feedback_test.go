package feedback

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func parseFile(t *testing.T, name, envelopeTo string) *Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Parse(raw, envelopeTo)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestDSN(t *testing.T) {
	rep := parseFile(t, "dsn.eml", "")
	if rep.Format != FormatDSN || rep.JobID != "spring-sale/1" || rep.Reporter != "mx.example.test" ||
		rep.EnvelopeTo != "bounces+onyhe2lom4wxgylmmuxtc@mail.sluice.test" {
		t.Errorf("report %+v", rep)
	}
	wantOrig := Original{MessageID: "spring.1@sluice.test", EnvelopeFrom: "bounces+onyhe2lom4wxgylmmuxtc@mail.sluice.test",
		From: "Shop <news@sluice.test>", To: "alice@example.test", JobID: "spring-sale/1"}
	if rep.Original != wantOrig {
		t.Errorf("original %+v, want %+v", rep.Original, wantOrig)
	}
	want := []Recipient{
		{Address: "alice@example.test", Kind: Hard, Reason: UserUnknown, Status: "5.1.1", Code: 550, Action: "failed",
			Text: "550 5.1.1 <alice@example.test>: Recipient address rejected: User unknown in local recipient table", RemoteMTA: "mx.example.test"},
		// A DMARC failure is about the sender: never hard.
		{Address: "bob@example.test", Kind: Soft, Reason: AuthFailure, Status: "5.7.26", Code: 550, Action: "failed",
			Text: "550 5.7.26 Unauthenticated email from sluice.test is not accepted due to domain's DMARC policy"},
		{Address: "carol@example.test", Kind: Soft, Reason: MailboxFull, Status: "4.2.2", Code: 452, Action: "delayed",
			Text: "452 4.2.2 Mailbox full"},
	}
	if !reflect.DeepEqual(rep.Recipients, want) {
		t.Errorf("recipients\n got %+v\nwant %+v", rep.Recipients, want)
	}
}

func TestARF(t *testing.T) {
	rep := parseFile(t, "arf.eml", "fbl@mail.sluice.test")
	want := []Recipient{{Address: "dave@provider.example", Kind: Complaint, Reason: FeedbackReport, FeedbackType: "abuse"}}
	if rep.Format != FormatARF || rep.JobID != "spring-sale/1" || rep.Original.MessageID != "spring.2@sluice.test" ||
		!reflect.DeepEqual(rep.Recipients, want) {
		t.Errorf("report %+v", rep)
	}
}

func TestAutoReply(t *testing.T) {
	rep := parseFile(t, "autoreply.eml", "bounces+onyhe2lom4wxgylmmuxtc@mail.sluice.test")
	want := []Recipient{{Address: "erin@example.test", Kind: AutoReply, Reason: Vacation}}
	if rep.Format != FormatAutoReply || rep.JobID != "spring-sale/1" || !reflect.DeepEqual(rep.Recipients, want) {
		t.Errorf("report %+v", rep)
	}
}

func TestExchange(t *testing.T) {
	rep := parseFile(t, "exchange.eml", "")
	if rep.Format != FormatText || rep.JobID != "spring-sale/1" || rep.Original.MessageID != "spring.3@sluice.test" || len(rep.Recipients) != 1 {
		t.Fatalf("report %+v", rep)
	}
	r := rep.Recipients[0]
	if r.Address != "frank@corp.example" || r.Kind != Hard || r.Reason != UserUnknown || r.Status != "5.1.10" || r.Code != 550 {
		t.Errorf("recipient %+v", r)
	}
}

func TestNotAMessage(t *testing.T) {
	if _, err := Parse([]byte("\r\n\r\n"), ""); err != ErrNotMessage {
		t.Errorf("Parse(blank) = %v", err)
	}
	rep, err := Parse([]byte("Subject: hello\r\n\r\nbuy cheap watches\r\n"), "")
	if err != nil || rep.Format != FormatUnknown || len(rep.Recipients) != 0 {
		t.Errorf("Parse(spam) = %+v, %v", rep, err)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status string
		code   int
		text   string
		kind   Kind
		reason Reason
	}{
		{"5.1.1", 550, "550 5.1.1 user unknown", Hard, UserUnknown},
		{"", 0, "550 5.1.1 <a@b.test>... User Unknown", Hard, UserUnknown},
		{"", 0, "550 Unknown user a@b.test (in reply to end of DATA command)", Soft, Filtered},
		{"5.1.2", 550, "Host or domain name not found", Hard, HostUnknown},
		{"4.1.1", 450, "450 4.1.1 User unknown in virtual alias table", Soft, UserUnknown},
		{"5.2.2", 552, "552 5.2.2 Mailbox full", Soft, MailboxFull},
		{"5.7.1", 554, "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", Soft, Blocked},
		{"5.7.23", 550, "550 5.7.23 SPF validation failed", Soft, AuthFailure},
		{"5.7.1", 550, "550 5.7.1 User unknown", Soft, Filtered}, // a policy status is no verdict on the address
		{"5.7.1", 554, "554 5.7.1 <x@y.test>: Relay access denied", Soft, RelayDenied},
		{"4.4.7", 0, "delivery time expired", Soft, Expired},
		{"5.0.0", 0, "", Unknown, Other},
	} {
		k, r := Classify(tc.status, tc.code, tc.text)
		if k != tc.kind || r != tc.reason {
			t.Errorf("Classify(%q, %d, %q) = %s, %s; want %s, %s", tc.status, tc.code, tc.text, k, r, tc.kind, tc.reason)
		}
		if r.SenderSide() && k == Hard {
			t.Errorf("sender-side reason %s judged hard", r)
		}
	}
}
