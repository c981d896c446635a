package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
	"github.com/sluice-mta/sluice/pkg/testutil/redistest"
	"github.com/sluice-mta/sluice/pkg/throttle"
)

// A pair another engine made hot is paced here after a sync; once an
// operator resets it (`limits reset --domain`), it cools here coolAfter
// after the sync that no longer sees it — not an hour later. A pair
// this engine heated but could not record is not cooled by its absence.
func TestDomainGateCoolsAResetPair(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	ks := keyspace.Space(redistest.Prefix(t))
	g := newDomainGate()
	b := throttle.DomainBucket("gmail", "news.test")
	local := throttle.DomainBucket("gmail", "other.test")
	now := time.Now()
	sync := func(at time.Time) (heated, cooled []string) {
		hot, err := throttle.Hot(ctx, rdb, ks, at)
		if err != nil {
			t.Fatal(err)
		}
		return g.merge(hot, at)
	}

	if err := throttle.Heat(ctx, rdb, ks, b, now.Add(domainHot), now); err != nil {
		t.Fatal(err)
	}
	g.heat(local, now)
	g.unshare(local) // its record failed
	if heated, _ := sync(now); !slices.Equal(heated, []string{b}) || !g.isHot(b, now) {
		t.Fatalf("after the first sync: heated %v, hot %v", heated, g.isHot(b, now))
	}
	if err := throttle.Reset(ctx, rdb, ks, b); err != nil {
		t.Fatal(err)
	}
	if _, cooled := sync(now.Add(time.Second)); len(cooled) != 0 || !g.isHot(b, now.Add(time.Second)) {
		t.Fatalf("cooled %v a second after its last sighting: a record in flight would be lost", cooled)
	}
	later := now.Add(coolAfter + 2*time.Second)
	if _, cooled := sync(later); !slices.Equal(cooled, []string{b}) || g.isHot(b, later) {
		t.Fatalf("reset pair still hot %v after %v (cooled %v)", g.isHot(b, later), coolAfter, cooled)
	}
	if !g.isHot(local, later) || !g.anyHot() {
		t.Error("a pair never recorded in Redis was cooled by its absence there")
	}
}
