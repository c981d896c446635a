package route

import "testing"

func TestLookupFirstMatchWins(t *testing.T) {
	tbl := Table{
		{Match: "vip.example.test", Host: "127.0.0.1:2601"},
		{Match: "*.example.test", Host: "127.0.0.1:2602"},
		{Match: "*", Host: "127.0.0.1:2603"},
	}
	if err := tbl.Validate(); err != nil {
		t.Fatal(err)
	}
	for domain, want := range map[string]string{
		"VIP.example.test.": "127.0.0.1:2601",
		"a.example.test":    "127.0.0.1:2602",
		"other.invalid":     "127.0.0.1:2603",
	} {
		r, ok := tbl.Lookup(domain)
		if !ok || r.Host != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", domain, r.Host, ok, want)
		}
	}
	if _, ok := (Table{{Match: "a.test", Host: "h:1"}}).Lookup("b.test"); ok {
		t.Error("b.test matched a.test")
	}
}

func TestValidateRejectsBadRoutes(t *testing.T) {
	for _, tbl := range []Table{
		{{Match: "", Host: "h:25"}},
		{{Match: "[", Host: "h:25"}},
		{{Match: "a.test", Host: "no-port"}},
	} {
		if err := tbl.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", tbl)
		}
	}
}
