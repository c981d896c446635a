package deliver

import (
	"context"
	"testing"

	"github.com/sluice-mta/sluice/pkg/mx"
	"github.com/sluice-mta/sluice/pkg/outcome"
	"github.com/sluice-mta/sluice/pkg/route"
)

func TestRouterResolve(t *testing.T) {
	r := &Router{
		Routes:   route.Table{{Match: "*.corp.test", Host: "127.0.0.1:2525", RequireTLS: true}},
		Resolver: mx.Static{MX: map[string][]string{"example.test": {"mx2.example.test", "mx1.example.test"}, "empty.test": {}}},
		Port:     2526,
	}
	d, _, ok := r.Resolve(context.Background(), "Mail.Corp.Test.")
	if !ok || len(d.Hosts) != 1 || d.Hosts[0] != (Host{Name: "127.0.0.1", Port: 2525, Routed: true}) || !d.RequireTLS || d.Key != "route:127.0.0.1:2525" {
		t.Fatalf("route: %+v", d)
	}
	d, _, ok = r.Resolve(context.Background(), "example.test")
	if !ok || len(d.Hosts) != 2 || d.Hosts[0].Name != "mx2.example.test" || d.Hosts[0].Port != 2526 || d.Key != "mx:mx1.example.test,mx2.example.test" {
		t.Fatalf("mx: %+v (want resolver order kept, key sorted)", d)
	}
	if _, out, ok := r.Resolve(context.Background(), "empty.test"); ok || out.Status != outcome.Deferred || out.Scope != outcome.ScopeDomain {
		t.Fatalf("no hosts: ok %v %v", ok, out)
	}
}
