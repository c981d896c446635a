package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/pkg/campaign"
	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/engine"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/message"
	"github.com/sluice-mta/sluice/pkg/store"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
	"github.com/sluice-mta/sluice/pkg/unsubscribe"
	"github.com/sluice-mta/sluice/pkg/verp"
)

// wireCampaign has what the streamed path must get right: merge fields in
// a header, the subject and both bodies, UTF-8, lines past 76 columns
// (soft breaks), lines starting with a dot (dot-stuffing after DATA, in
// static text and in merge output), trailing white space.
const wireCampaign = `id: w
from: '"Sluice News" <news@sluice.test>'
subject: 'Grüezi {{.first_name}}, news from {{.city}}'
headers:
  X-Campaign-Tag: 'w-{{.city}}'
unsubscribe:
  mailto: unsub@sluice.test
text: |
  Hello {{.first_name}} from {{.city}}!
  .a line that starts with a dot
  {{.dot}}
  .
  ` + "A long static line: " + `{{"x"}}` + ` then more words so that it runs well past seventy-six columns and needs a soft break.
  trailing spaces   
  Grüße, café, naïve — the end.
html: '<p>Hello <b>{{.first_name}}</b> from {{.city}}!</p>
  <p>.dotted {{.dot}} and a long paragraph of static HTML that goes on and on past the quoted-printable line limit.</p>'
recipients: w.csv
`

// TestDeliveredBytesAreTheRenderedMessage: what the engine streams to a
// receiver (composed pieces, signed as pieces, sent after BDAT or
// dot-stuffed after DATA) is byte for byte the message Template.Render
// builds whole, behind a DKIM-Signature that go-msgauth verifies.
func TestDeliveredBytesAreTheRenderedMessage(t *testing.T) {
	for _, chunking := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunking=%v", chunking), func(t *testing.T) {
			testDeliveredBytes(t, chunking)
		})
	}
}

func testDeliveredBytes(t *testing.T, chunking bool) {
	const n = 12
	srv := smtptest.Start(t, smtptest.Options{Wire: true})
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	dir := t.TempDir()
	var list strings.Builder
	list.WriteString("email,first_name,city,dot\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&list, "u%02d@example.test,Nämé%02d,Zürich %d,.%s\n", i, i, i, strings.Repeat("y", 10*i))
	}
	enginetest.Write(t, dir+"/w.csv", list.String())
	path := enginetest.Write(t, dir+"/w.yaml", wireCampaign)
	if _, err := launch.Launch(context.Background(), rdb, ks, path, launch.Options{}); err != nil {
		t.Fatal(err)
	}
	key, txt := enginetest.DKIMKey(t, dir, "sluice.test")
	dns := dnstest.Start(t, dnstest.TXT("s1._domainkey.sluice.test", 300, txt))
	cfg := enginetest.Config(prefix, srv.Addr)
	cfg.DKIM = []config.DKIM{key}
	cfg.Unsubscribe = config.Unsubscribe{BaseURL: "https://mail.sluice.test/", Secret: "0123456789abcdef0123456789abcdef"}
	enginetest.StartWith(t, cfg, func(d *engine.Deps) {
		if !chunking {
			s := deliver.NewSMTP(deliver.SMTPConfig{Hostname: cfg.Hostname, DisableChunking: true})
			t.Cleanup(s.Close)
			d.Sender = s
		}
	})
	st := store.New(rdb, ks)
	if s := enginetest.WaitFinished(t, st, "w", 20*time.Second); s.Delivered != n {
		t.Fatalf("status %+v", s)
	}
	if bdat := bytes.Contains(srv.Wire(), []byte("BDAT ")); bdat != chunking {
		t.Fatalf("BDAT on the wire: %v; want %v", bdat, chunking)
	}

	tmpl := storedTemplate(t, st, "w")
	us, err := unsubscribe.NewSigner([]byte(cfg.Unsubscribe.Secret))
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != n {
		t.Fatalf("%d messages at the receiver; want %d", len(msgs), n)
	}
	for _, m := range msgs {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: dns.LookupTXT})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "sluice.test" {
			t.Fatalf("verification %+v %v of:\n%s", vs, err, m.Data)
		}
		got := withoutSignature(t, m.Data)
		i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m.To[0], "u"), "@example.test"))
		if err != nil {
			t.Fatalf("recipient %q", m.To[0])
		}
		want := renderOldWay(t, tmpl, us, m.To[0], i, got)
		if !bytes.Equal(got, want) {
			t.Fatalf("delivered bytes differ from the rendered message for %s:\n--- delivered\n%s\n--- rendered\n%s", m.To[0], got, want)
		}
	}
}

// storedTemplate compiles the campaign's stored definition, as the engine
// does.
func storedTemplate(t *testing.T, st *store.Store, id string) *message.Template {
	t.Helper()
	raw, err := st.Spec(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var spec campaign.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	tmpl, err := message.Compile(spec.Parts())
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// withoutSignature cuts the leading DKIM-Signature field off a message.
func withoutSignature(t *testing.T, data []byte) []byte {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("DKIM-Signature:")) {
		t.Fatalf("message does not start with its signature:\n%s", data)
	}
	rest := data
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		rest = rest[i+2:]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			return rest
		}
	}
}

var boundaryRe = regexp.MustCompile(`boundary="([^"]+)"`)

// renderOldWay renders recipient i's message whole with Render, as the
// engine did before it streamed pieces, with the same unsubscribe
// headers; Date, Message-ID (once it is seen to name the job) and the
// boundary, which hold random or time-dependent parts, are read from got.
func renderOldWay(t *testing.T, tmpl *message.Template, us *unsubscribe.Signer, to string, i int, got []byte) []byte {
	t.Helper()
	hdr, err := mail.ReadMessage(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	date, err := mail.ParseDate(hdr.Header.Get("Date"))
	if err != nil {
		t.Fatal(err)
	}
	mid := hdr.Header.Get("Message-ID")
	if id, ok := verp.FromMessageID(mid); !ok || id != "w/"+strconv.Itoa(i+2) {
		t.Fatalf("Message-ID %q names job %q; want w/%d", mid, id, i+2)
	}
	url := unsubscribe.URL("https://mail.sluice.test/", us.Token(to, "w", suppression.Marketing))
	fields := map[string]string{"first_name": fmt.Sprintf("Nämé%02d", i), "city": fmt.Sprintf("Zürich %d", i), "dot": "." + strings.Repeat("y", 10*i)}
	want, err := tmpl.Render(to, fields, message.Extra{
		MessageID:      mid, // its random part aside, checked above
		Date:           date,
		UnsubscribeURL: url,
		Headers: []message.Header{
			{Name: "List-Unsubscribe", Value: "<" + url + ">, <mailto:unsub@sluice.test?subject=unsubscribe>"},
			{Name: "List-Unsubscribe-Post", Value: "List-Unsubscribe=One-Click"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g, w := boundaryRe.FindSubmatch(got), boundaryRe.FindSubmatch(want)
	if g == nil || w == nil {
		t.Fatalf("no boundary in the delivered or the rendered message")
	}
	return bytes.ReplaceAll(want, w[1], g[1])
}
