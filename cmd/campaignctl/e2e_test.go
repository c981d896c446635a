package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/mail"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestCampaignDeliveredExactlyOncePerRecipient(t *testing.T) {
	t.Parallel()
	const n = 1000
	prefix := redistest.Prefix(t)
	srv := smtptest.Start(t, smtptest.Options{})
	path := enginetest.Campaign(t, t.TempDir(), "e2e", n, "example.test")
	out, stderr, code := ctl(t, prefix, "launch", path)
	if code != 0 {
		t.Fatalf("launch exit %d: %s%s", code, out, stderr)
	}
	enginetest.Start(t, enginetest.Config(prefix, srv.Addr))

	var st store.Status
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, stderr, code = ctl(t, prefix, "status", "e2e", "--json")
		if code != 0 {
			t.Fatalf("status exit %d: %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if st.State == store.StateFinished || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.State != store.StateFinished || st.Delivered != n || st.Total != n || st.Queued != 0 {
		t.Fatalf("status %+v; want finished with %d delivered", st, n)
	}
	var keys map[string]any
	_ = json.Unmarshal([]byte(out), &keys)
	for _, k := range []string{"id", "state", "total", "queued", "delivered", "deferred", "bounced", "suppressed", "failed"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("status --json lacks key %q", k)
		}
	}
	if len(keys) != 9 {
		t.Errorf("status --json has %d keys, want exactly 9: %v", len(keys), keys)
	}

	msgs := srv.Messages()
	if len(msgs) != n {
		t.Fatalf("receiver got %d messages, want %d", len(msgs), n)
	}
	seen := map[string]int{}
	dec := new(mime.WordDecoder)
	for _, m := range msgs {
		if len(m.To) != 1 || m.From != "news@sluice.test" {
			t.Fatalf("envelope from=%q to=%v", m.From, m.To)
		}
		to := m.To[0]
		seen[to]++
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("message to %s does not parse: %v", to, err)
		}
		var i int
		fmt.Sscanf(to, "user%05d@", &i)
		subj, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
		if want := fmt.Sprintf("Grüezi Name%05d", i); subj != want {
			t.Fatalf("subject for %s = %q, want %q", to, subj, want)
		}
		if msg.Header.Get("To") != to || msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" {
			t.Fatalf("headers for %s: %v", to, msg.Header)
		}
		if !bytes.Contains(m.Data, []byte(fmt.Sprintf("Name%05d", i))) {
			t.Fatalf("body for %s lacks its merge field", to)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct recipients received mail, want %d", len(seen), n)
	}
	for to, c := range seen {
		if c != 1 {
			t.Fatalf("%s received %d copies", to, c)
		}
	}
}
