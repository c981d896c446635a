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
	// No VERP address (the plain return path), no X-Sluice-Job: only
	// the Message-ID names the job.
	e.send(t, fblAddr, arfWith(returnPath, addr(3), mid))

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
