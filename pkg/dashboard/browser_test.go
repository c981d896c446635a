package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/dashboard"
	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/launch"
	"github.com/sluice-mta/sluice/pkg/route"
	"github.com/sluice-mta/sluice/pkg/suppression"
	"github.com/sluice-mta/sluice/pkg/testutil/enginetest"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

const token = "let-me-see"

// browser returns the path of a Chromium, skipping the test when there is
// none — except in CI (CI=true), where a missing browser fails it.
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium on PATH: CI must install it (apt-get install chromium; see scripts/install-chromium.sh)")
	}
	t.Skip("SKIPPED: the dashboard's browser test needs Chromium (Debian: apt-get install chromium, or scripts/install-chromium.sh)")
	return ""
}

// setup runs an engine with a campaign in progress (to a.test, paced)
// and one whose provider (b.test) is suspended by a response rule, and
// serves the dashboard over them.
func setup(t *testing.T) *httptest.Server {
	prefix := redistest.Prefix(t)
	ks := keyspace.Space(prefix)
	rdb := redistest.Client(t)
	ok := smtptest.Start(t, smtptest.Options{})
	blocked := smtptest.Start(t, smtptest.Options{Rcpt: func(string) error {
		return smtptest.Reply(421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints")
	}})
	cfg := enginetest.Config(prefix, ok.Addr)
	cfg.Routes = route.Table{{Match: "b.test", Host: blocked.Addr}, {Match: "*", Host: ok.Addr}}
	cfg.Throttle.Default.StartRate, cfg.Throttle.Default.MaxRate, cfg.Throttle.Default.Burst = 150, 150, 10
	cfg.Throttle.Rules = []config.Rule{{Name: "tss04", Match: "TSS04", Action: "suspend", Duration: time.Hour}}
	dir := t.TempDir()
	for _, c := range []struct {
		id     string
		n      int
		domain string
	}{{"blocked", 5, "b.test"}, {"spring-sale", 3000, "a.test"}} {
		if _, err := launch.Launch(context.Background(), rdb, ks, enginetest.Campaign(t, dir, c.id, c.n, c.domain), launch.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Start(t, cfg)

	sum := sha256.Sum256([]byte(token))
	d := dashboard.New(rdb, ks, suppression.New(rdb, ks), []string{hex.EncodeToString(sum[:])}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go d.Run(ctx)
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestDashboardNeedsAToken(t *testing.T) {
	srv := setup(t)
	for _, path := range []string{"/", "/dashboard.json", "/?token=wrong"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %s", path, resp.Status)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/dashboard.json", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("with the token: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
}

// TestDashboardInBrowser drives headless Chromium: the page shows the
// running campaign's progress advancing and the suspended provider's
// state and reply. SLUICE_DASHBOARD_SCREENSHOT=FILE.png keeps a
// screenshot.
func TestDashboardInBrowser(t *testing.T) {
	exe := browser(t)
	srv := setup(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-sync", true), chromedp.WindowSize(1280, 860))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 40*time.Second)
	defer cancel()

	// The page re-renders its tables every second: a node found by a
	// query may be gone when its text is asked for ("No node with given
	// id found"), so text is read in one evaluation.
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector(`+strconv.Quote(sel)+`) || {}).innerText || ""`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	pct := func() float64 {
		s := text(`tr[data-campaign="spring-sale"] .pct`)
		if s == "" {
			return 0 // between renders
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
		if err != nil {
			t.Fatalf("progress %q: %v", s, err)
		}
		return v
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?token="+token),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-campaign="spring-sale"] .pct`))); err != nil {
		t.Fatal(err)
	}
	var first float64
	for first = pct(); first == 0; first = pct() {
		time.Sleep(200 * time.Millisecond)
	}
	var second float64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		if second = pct(); second > first && second < 100 {
			break
		}
	}
	if second <= first {
		t.Fatalf("progress did not advance: %.1f%% then %.1f%%", first, second)
	}
	// The suspended provider, with the reply that suspended it.
	var row string
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		if row = text(`#providers`); strings.Contains(row, "suspended") && strings.Contains(row, "TSS04") {
			break
		}
	}
	if !strings.Contains(row, "suspended") || !strings.Contains(row, "[TSS04] Messages from 192.0.2.1 temporarily deferred") {
		t.Fatalf("providers table lacks the suspension and its reply:\n%s", row)
	}
	// The chart's provider choice lists the providers, and drawing one
	// provider's series works (chart() throws nothing).
	choices, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#prov option")].map(o => o.value)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(choices) < 2 || choices[0] != "" {
		t.Fatalf("chart provider choice %q: want all providers, then each", choices)
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById("prov"); s.value = s.options[1].value; s.dispatchEvent(new Event("change")); return true })()`))
	if err != nil || !drawn {
		t.Fatalf("chart for one provider: %v", err)
	}
	t.Logf("progress %.1f%% → %.1f%%; providers: %s; chart choices %q", first, second, strings.Join(strings.Fields(row), " "), choices)
	if path := os.Getenv("SLUICE_DASHBOARD_SCREENSHOT"); path != "" {
		time.Sleep(4 * time.Second) // a few seconds of chart
		// Quality 100 makes a PNG (less, a JPEG).
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
