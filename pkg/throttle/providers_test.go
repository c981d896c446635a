package throttle

import (
	"testing"

	"github.com/sluice-mta/sluice/pkg/config"
	"github.com/sluice-mta/sluice/pkg/deliver"
)

func mxDest(domain string, hosts ...string) deliver.Destination {
	d := deliver.Destination{Domain: domain, Key: "mx:"}
	for i, h := range hosts {
		d.Hosts = append(d.Hosts, deliver.Host{Name: h, Port: 25})
		if i > 0 {
			d.Key += ","
		}
		d.Key += h
	}
	return d
}

func TestKeyRollsDestinationsUpIntoShippedProviders(t *testing.T) {
	f, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	m := newMatcher(f.Providers)
	key := func(d deliver.Destination) string {
		if p := m.provider(d.Domain, d.Key, d.HostNames()); p != "" {
			return p
		}
		return d.Key
	}
	for _, c := range []struct {
		d    deliver.Destination
		want string
	}{
		{mxDest("gmail.com", "gmail-smtp-in.l.google.com"), "google"},
		// A Google Workspace domain shares Google's bucket.
		{mxDest("corp.example.test", "aspmx.l.google.com", "alt1.aspmx.l.google.com", "aspmx2.googlemail.com"), "google"},
		{mxDest("hotmail.com"), "microsoft"},
		{mxDest("tenant.example.test", "tenant-example-test.mail.protection.outlook.com"), "microsoft"},
		{mxDest("aol.com"), "yahoo"},
		{mxDest("small.example.test", "mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net"), "yahoo"},
		{mxDest("me.example.test", "mx01.mail.icloud.com."), "apple"},
		{mxDest("comcast.net"), "comcast"},
		// Every MX must match: a backup elsewhere keeps the MX set's key.
		{mxDest("mixed.example.test", "aspmx.l.google.com", "backup.mixed.example.test"), "mx:aspmx.l.google.com,backup.mixed.example.test"},
		// A look-alike is not the provider.
		{mxDest("evil.example.test", "mx.notgoogle.com"), "mx:mx.notgoogle.com"},
		{deliver.Destination{Domain: "r.example.test", Hosts: []deliver.Host{{Name: "127.0.0.1", Port: 2525, Routed: true}}, Key: "route:127.0.0.1:2525"}, "route:127.0.0.1:2525"},
	} {
		if got := key(c.d); got != c.want {
			t.Errorf("%s %v: key %q, want %q", c.d.Domain, c.d.Hosts, got, c.want)
		}
	}
	// Domains on one shared host share its key.
	a, b := mxDest("a.example.test", "mx.shared.test"), mxDest("b.example.test", "mx.shared.test")
	if key(a) != key(b) || key(a) != "mx:mx.shared.test" {
		t.Errorf("shared host: %q and %q", key(a), key(b))
	}
	names := map[string]bool{}
	for _, p := range f.Providers {
		names[p.Name] = true
	}
	for _, n := range []string{"google", "microsoft", "yahoo", "apple", "comcast"} {
		if !names[n] {
			t.Errorf("shipped providers lack %s", n)
		}
	}
}

func TestProvidersFileReplacesShippedAndConfigOverridesLimits(t *testing.T) {
	e := newEnv(t, config.Limits{StartRate: 10, Burst: 3, MaxConnections: 10, MaxMessagesPerConnection: 100})
	e.cfg.Providers = map[string]config.Limits{"bigmail": {MaxConnections: 2}, "route:h:25": {MaxMessagesPerConnection: 5}}
	l := e.limiter("e1", 0)
	if k := keyOf(l, mxDest("gmail.com", "gmail-smtp-in.l.google.com")); k != "mx:gmail-smtp-in.l.google.com" {
		t.Errorf("shipped provider still recognised with a providers file: %q", k)
	}
	if k := keyOf(l, mxDest("x.example.test", "mx1.bigmail.test", "mx2.bigmail-cdn.test")); k != "bigmail" {
		t.Errorf("test provider not recognised: %q", k)
	}
	lim := l.Limits("bigmail")
	if lim.StartRate != 100 || lim.MaxConnections != 2 || lim.MaxMessagesPerConnection != 7 || lim.Burst != 1 {
		t.Errorf("bigmail limits %+v: want file values under config overrides", lim)
	}
	if lim := l.Limits("route:h:25"); lim.MaxMessagesPerConnection != 5 || lim.StartRate != 10 || lim.MaxConnections != 10 {
		t.Errorf("route limits %+v", lim)
	}
	if lim := l.Limits("mx:other"); lim.MaxRate < lim.StartRate || lim.StartConnections != 10 || lim.MinConnections != 1 {
		t.Errorf("normalised default %+v", lim)
	}
}

func TestBadProvidersAndRulesAreRejected(t *testing.T) {
	if _, err := LoadFile("testdata/missing.yaml"); err == nil {
		t.Error("missing providers file accepted")
	}
	for _, r := range []config.Rule{
		{Name: "x", Match: "(", Action: "suspend", Duration: 1},
		{Name: "x", Match: "a", Action: "pause", Duration: 1},
		{Name: "x", Match: "a", Action: "cap", Duration: 1},
		{Name: "x", Match: "a", Action: "suspend"},
		{Name: "x", Match: "a", Action: "suspend", Duration: 1, Threshold: "2"},
		{Name: "", Match: "a", Action: "suspend", Duration: 1},
	} {
		if _, err := compileRules([]config.Rule{r}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}

func keyOf(l *Limiter, d deliver.Destination) string { return l.Key(d.Domain, d.Key, d.HostNames()) }
