package config

import (
	"strings"
	"testing"
)

func TestInboundAndGuardrails(t *testing.T) {
	c, err := Parse("e.yaml", []byte("inbound:\n  listen: 127.0.0.1:2525\n  domains: [bounce.example.com]\n  fbl: [fbl@example.com]\nguardrails:\n  complaint_pause: 0.005\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Inbound.ReturnPaths(); len(got) != 1 || got[0] != "bounces@bounce.example.com" {
		t.Errorf("return paths %v", got)
	}
	g := c.Guardrails
	if g.ComplaintWarn != 0.001 || g.ComplaintPause != 0.005 || g.BouncePause != 0.05 || g.MinDelivered != 1000 {
		t.Errorf("guardrails %+v", g)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"inbound:\n  listen: :25\n", "e.yaml:1: inbound: listen is set but neither domains nor fbl"},
		{"inbound:\n  fbl: [nobody]\n", "e.yaml:2: inbound.fbl[0]"},
		{"guardrails:\n  bounce_pause: 5\n", "e.yaml:2: guardrails.bounce_pause: 5 must be a fraction"},
	} {
		if _, err := Parse("e.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
