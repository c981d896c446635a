package outcome

import "testing"

func TestFinal(t *testing.T) {
	for _, s := range []Status{Delivered, Bounced, Failed, Suppressed, Cancelled} {
		if !s.Final() || !IsFinal(string(s)) {
			t.Errorf("%s is not final", s)
		}
	}
	for _, s := range []Status{Deferred, Queued, "gone"} {
		if IsFinal(string(s)) {
			t.Errorf("%s is final", s)
		}
	}
}

func TestCounts(t *testing.T) {
	var c Counts
	for _, s := range []string{"delivered", "delivered", "deferred", "queued", "bounced", "suppressed", "failed", "cancelled", "unknown"} {
		c.Add(s)
	}
	want := Counts{Total: 9, Queued: 3, Delivered: 2, Deferred: 1, Bounced: 1, Suppressed: 1, Failed: 1, Cancelled: 1}
	if c != want {
		t.Fatalf("Add: %+v, want %+v", c, want)
	}
	var d Counts
	for _, name := range Counters {
		d.Set(name, 1)
	}
	d.Merge(c)
	if d.Total != 10 || d.Cancelled != 2 || d.Queued != 4 {
		t.Fatalf("Set and Merge: %+v", d)
	}
}

func TestScopePaces(t *testing.T) {
	for s, want := range map[Scope]bool{
		ScopeProvider: true, ScopeIP: true, ScopeSendingDomain: true,
		ScopeRecipient: false, ScopeDomain: false, ScopeSender: false, ScopeConnection: false,
		ScopeHost: false, ScopeTransaction: false, ScopeMessage: false, ScopeNone: false,
	} {
		if s.Paces() != want {
			t.Errorf("%q.Paces() = %v, want %v", s, !want, want)
		}
	}
}
