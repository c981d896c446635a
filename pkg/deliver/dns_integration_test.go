package deliver_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mta/sluice/pkg/deliver"
	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/testutil/dnstest"
	"github.com/sluice-mta/sluice/pkg/testutil/smtptest"
)

// receivers starts one smtptest receiver per address in ips, all on the
// same port (Router.Port is one number for every MX host), and returns
// them with the port. deadIP gets nothing, so connecting there is refused.
func receivers(t *testing.T, deadIP string, ips ...string) ([]*smtptest.Server, int) {
	t.Helper()
	var last error
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		var srvs []*smtptest.Server
		closeAll := func() {
			for _, s := range srvs {
				s.Close()
			}
		}
		ok := true
		for _, ip := range ips {
			s, err := smtptest.Listen(net.JoinHostPort(ip, strconv.Itoa(port)), smtptest.Options{})
			if err != nil {
				last, ok = err, false
				break
			}
			srvs = append(srvs, s)
		}
		// The dead address must really be free on this port.
		if ok {
			if dl, err := net.Listen("tcp", net.JoinHostPort(deadIP, strconv.Itoa(port))); err != nil {
				last, ok = err, false
			} else {
				dl.Close()
			}
		}
		if !ok {
			closeAll()
			continue
		}
		t.Cleanup(closeAll)
		return srvs, port
	}
	t.Fatalf("no port free on %v: %v", ips, last)
	return nil, 0
}

func TestDNSRouting(t *testing.T) {
	rcv, port := receivers(t, "127.0.0.9", "127.0.0.2", "127.0.0.3", "127.0.0.4")
	mx1, mx2, implicit := rcv[0], rcv[1], rcv[2]
	zone := dnstest.Start(t,
		"pref.test. 300 IN MX 20 mx2.pref.test.",
		"pref.test. 300 IN MX 10 mx1.pref.test.",
		"mx1.pref.test. 300 IN A 127.0.0.2",
		"mx2.pref.test. 300 IN A 127.0.0.3",
		"failover.test. 300 IN MX 10 dead.failover.test.",
		"failover.test. 300 IN MX 20 mx2.pref.test.",
		"dead.failover.test. 300 IN A 127.0.0.9",
		"implicit.test. 300 IN A 127.0.0.4",
		"null.test. 300 IN MX 0 .",
		"servfail.test. 300 IN MX 10 mx1.pref.test.",
	)
	zone.ServFail("servfail.test")
	res, err := mx.NewDNS(mx.DNSConfig{Server: zone.Addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	router := &deliver.Router{Resolver: res, Port: port}
	sender := deliver.NewSMTP(deliver.SMTPConfig{Resolver: res, Hostname: "out.sluice.test",
		ConnectTimeout: time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})
	t.Cleanup(sender.Close)

	ctx := context.Background()
	send := func(domain string) outcome.Outcome {
		t.Helper()
		dest, out, ok := router.Resolve(ctx, domain)
		if !ok {
			return out
		}
		to := "user@" + domain
		msg := fmt.Sprintf("From: news@sluice.test\r\nTo: %s\r\nSubject: hi\r\n\r\nhello %s\r\n", to, domain)
		return sender.Send(ctx, dest, deliver.Envelope{From: "bounce@sluice.test", To: to}, []byte(msg))
	}

	t.Run("preferred MX", func(t *testing.T) {
		dest, _, ok := router.Resolve(ctx, "pref.test")
		if !ok || len(dest.Hosts) != 2 || dest.Hosts[0].Name != "mx1.pref.test" || dest.Hosts[0].Port != port ||
			dest.Key != "mx:mx1.pref.test,mx2.pref.test" {
			t.Fatalf("destination %+v", dest)
		}
		for i := range 3 {
			if out := send("pref.test"); out.Status != outcome.Delivered || out.Host != "mx1.pref.test" {
				t.Fatalf("send %d: %v (host %s)", i, out, out.Host)
			}
		}
		if mx1.Count() != 3 || mx2.Count() != 0 {
			t.Fatalf("mx1 got %d, mx2 got %d; want 3 and 0", mx1.Count(), mx2.Count())
		}
		if got := mx1.Messages()[0].To; len(got) != 1 || got[0] != "user@pref.test" {
			t.Fatalf("RCPT %v", got)
		}
		// Four resolutions, one MX query: the resolver caches.
		if n := zone.Queries("pref.test", dns.TypeMX); n != 1 {
			t.Fatalf("MX queries %d, want 1", n)
		}
	})

	t.Run("failover to second MX", func(t *testing.T) {
		before := mx2.Count()
		out := send("failover.test")
		if out.Status != outcome.Delivered || out.Host != "mx2.pref.test" {
			t.Fatalf("outcome %v (host %s)", out, out.Host)
		}
		if mx2.Count() != before+1 || mx2.Messages()[before].To[0] != "user@failover.test" {
			t.Fatalf("mx2 did not receive the failover message")
		}
	})

	t.Run("implicit MX", func(t *testing.T) {
		out := send("implicit.test")
		if out.Status != outcome.Delivered || out.Host != "implicit.test" || implicit.Count() != 1 {
			t.Fatalf("outcome %v (host %s), implicit receiver got %d", out, out.Host, implicit.Count())
		}
	})

	for _, c := range []struct {
		domain   string
		status   outcome.Status
		enhanced string
	}{
		{"null.test", outcome.Bounced, "5.1.10"},
		{"nxdomain.test", outcome.Bounced, "5.1.2"},
		{"servfail.test", outcome.Deferred, "4.4.3"},
	} {
		t.Run(c.domain, func(t *testing.T) {
			total := mx1.Count() + mx2.Count() + implicit.Count()
			out := send(c.domain)
			if out.Status != c.status || out.Enhanced != c.enhanced || out.Scope != outcome.ScopeDomain || out.Stage != outcome.StageRoute {
				t.Fatalf("outcome %v scope %s stage %s; want %s %s domain/route", out, out.Scope, out.Stage, c.status, c.enhanced)
			}
			if now := mx1.Count() + mx2.Count() + implicit.Count(); now != total {
				t.Fatalf("a message was delivered for %s", c.domain)
			}
		})
	}
}
