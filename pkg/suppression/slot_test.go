package suppression

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/testutil/slotcheck"
)

// TestOneSlotPerCommand: every operation of the list sends only scripts
// and commands whose keys share a hash slot, as a Redis Cluster needs.
func TestOneSlotPerCommand(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	h := slotcheck.Attach(t, f.rdb)
	es := make([]Entry, 300)
	addrs := make([]string, len(es))
	for i := range es {
		addrs[i] = fmt.Sprintf("u%d@d%d.test", i, i%7)
		es[i] = Entry{Address: addrs[i], Reason: HardBounce}
	}
	es = append(es, Entry{Address: "@d3.test", Reason: Manual})
	if err := f.l.AddMany(ctx, es); err != nil {
		t.Fatal(err)
	}
	for i := range es[:50] {
		if err := es[i].Prepare(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.l.Merge(ctx, es[:50], "import"); err != nil {
		t.Fatal(err)
	}
	res, err := f.l.Check(ctx, LaneMarketing, append(addrs, "x@d3.test", "new@else.test"))
	if err != nil || res[len(res)-2] == nil || res[len(res)-1] != nil {
		t.Fatalf("check: %v", err)
	}
	if _, _, err := f.l.Lookup(ctx, "u3@d3.test"); err != nil {
		t.Fatal(err)
	}
	if ev, err := f.l.Audit(ctx, "u3@d3.test"); err != nil || len(ev) != 2 {
		t.Fatalf("audit %v %v", ev, err)
	}
	n := 0
	if err := f.l.Scan(ctx, Filter{}, func(Entry) error { n++; return nil }); err != nil || n != len(es) {
		t.Fatalf("scan %d %v", n, err)
	}
	if size, err := f.l.Size(ctx); err != nil || size != int64(len(es)) {
		t.Fatalf("size %d %v", size, err)
	}
	if removed, err := f.l.RemoveMany(ctx, addrs[:100], "t", "test"); err != nil || removed != 100 {
		t.Fatalf("remove %d %v", removed, err)
	}
	lim := SoftLimit{Count: 2}
	for range 2 {
		if _, err := f.l.NoteSoftBounce(ctx, "full@box.test", Entry{}, time.Now(), lim); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.l.ClearSoftBounces(ctx, "full@box.test"); err != nil {
		t.Fatal(err)
	}
	if h.Checked() < 10 {
		t.Fatalf("only %d commands checked", h.Checked())
	}
}
