package feedbackloop_test

import (
	"bufio"
	"bytes"
	"context"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/feedbackloop"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// arfNoVERP is a forwarded abuse report about the message sent to rcpt
// whose quoted headers carry Message-ID mid but no VERP address and no
// X-Sluice-Job: the feedback provider rewrote the envelope.
func arfNoVERP(rcpt, mid string) string {
	return "From: <feedback@fbl.example.test>\r\n" +
		"To: " + fblAddr + "\r\n" +
		"Subject: FW: Hello\r\n" +
		"Message-ID: <arf-fwd-" + rcpt + ">\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"f1\"\r\n\r\n" +
		"--f1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n" +
		"--f1\r\nContent-Type: message/feedback-report\r\n\r\n" +
		"Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n" +
		"Original-Mail-From: <" + returnPath + ">\r\n" +
		"Arrival-Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n\r\n" +
		"--f1\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Return-Path: <" + returnPath + ">\r\nFrom: \"Sluice News\" <news@sluice.test>\r\nTo: " + rcpt + "\r\n" +
		"Subject: Hello\r\nMessage-ID: " + mid + "\r\n\r\nHello!\r\n" +
		"--f1--\r\n"
}

// TestComplaintFoundByMessageID: without VERP, a complaint that quotes
// only the original's Message-ID is applied to the right record, since
// sluice's Message-ID of a campaign message carries the job id.
func TestComplaintFoundByMessageID(t *testing.T) {
	var mu sync.Mutex
	mids := map[string]string{} // recipient → Message-ID sent
	e := setupWith(t, smtptest.Options{Quiet: true, Discard: true, Data: func(_ string, to []string, data []byte) error {
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(data))).ReadMIMEHeader()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range to {
			mids[strings.ToLower(r)] = h.Get("Message-Id")
		}
		return nil
	}})
	ctx := context.Background()
	e.launchYAML(t, "mid1", 10, "return_path: "+returnPath+"\n") // verp off
	if s := enginetest.WaitFinished(t, e.st, "mid1", 30*time.Second); s.Delivered != 10 {
		t.Fatalf("campaign: %+v", s)
	}
	mu.Lock()
	mid := mids[addr(3)]
	mu.Unlock()
	if mid == "" {
		t.Fatalf("no Message-ID seen for %s: %v", addr(3), mids)
	}
	// No VERP address, no X-Sluice-Job: only the Message-ID names the job.
	e.send(t, fblAddr, arfNoVERP(addr(3), mid))

	rec, err := e.st.Record(ctx, "mid1", addr(3))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != "delivered" || rec.Reason != feedbackloop.ComplaintReason {
		t.Errorf("record %+v, want delivered with reason complaint", rec)
	}
	ent, err := e.supp.Get(ctx, addr(3))
	if err != nil || ent == nil || ent.Reason != suppression.Complaint || ent.Campaign != "mid1" {
		t.Errorf("suppression %+v, %v; want a complaint of campaign mid1", ent, err)
	}
	s, err := e.st.Status(ctx, "mid1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Complaints != 1 || s.State != store.StateFinished {
		t.Errorf("status %+v, want 1 complaint", s)
	}
	// Another recipient's record is untouched.
	if rec, _ := e.st.Record(ctx, "mid1", addr(4)); rec.Reason == feedbackloop.ComplaintReason {
		t.Errorf("%s marked too: %+v", addr(4), rec)
	}
}
