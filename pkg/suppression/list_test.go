package suppression

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

func TestNormalize(t *testing.T) {
	ok := map[string]string{
		"User@Example.TEST":         "user@example.test",
		"  <John.Doe+x@Mail.test.>": "john.doe+x@mail.test",
		"@Example.Test":             "@example.test",
		"o'brien@b-c.test":          "o'brien@b-c.test",
		" user@example.test\t":      "user@example.test", // already normal: returned as it is
		"user@example.test.":        "user@example.test",
		"Ünï@Bücher.test":           "ünï@bücher.test",
	}
	for in, want := range ok {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "   ", "example.test", "user@", "a b@x.test", `"q"@x.test`, "u@[192.0.2.1]",
		"u@-x.test", "u@x..test", "u@x_y!.test", strings.Repeat("a", 65) + "@x.test", "u@x\x00.test", "\xff@x.test"}
	for _, in := range bad {
		if got, err := Normalize(in); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("Normalize(%q) = %q, %v; want ErrInvalidAddress", in, got, err)
		}
	}
}

func TestAddGetUpsert(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustAdd(t, f.l, Entry{Address: "Bob@Example.test", Reason: HardBounce, Code: 550, Enhanced: "5.1.1",
		Detail: "user\r\nunknown", Campaign: "c1", Lane: "marketing", Source: "engine", FirstSeen: t0})

	raw, err := f.rdb.HGet(ctx, f.l.entriesKey(shardOf("bob@example.test")), "bob@example.test").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Exact stored bytes: the compact encoding is a storage format.
	if want := "1\x1fg\x1f1740830400\x1f1740830400\x1fh\x1f550\x1f5.1.1\x1fc1\x1fmarketing\x1fengine\x1fuser  unknown"; raw != want {
		t.Fatalf("stored %q, want %q", raw, want)
	}

	// Same scope, later: details and last_seen move, first_seen stays.
	mustAdd(t, f.l, Entry{Address: "bob@example.test", Reason: HardBounce, Code: 551, Enhanced: "5.1.6",
		Detail: "moved", Source: "engine", FirstSeen: t0.Add(time.Hour)})
	e, err := f.l.Get(ctx, "BOB@example.test")
	if err != nil || e == nil {
		t.Fatalf("Get: %v %v", e, err)
	}
	if !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0.Add(time.Hour)) || e.Code != 551 || e.Detail != "moved" || e.Scope != Global {
		t.Fatalf("after upsert: %+v", e)
	}

	// Widening: marketing unsubscribe, then a global hard bounce.
	mustAdd(t, f.l, Entry{Address: "ann@example.test", Reason: Unsubscribe, Source: "one-click", FirstSeen: t0})
	if e, _ := f.l.Get(ctx, "ann@example.test"); e == nil || e.Scope != Marketing {
		t.Fatalf("unsubscribe default scope: %+v", e)
	}
	mustAdd(t, f.l, Entry{Address: "ann@example.test", Reason: HardBounce, Code: 550, Source: "engine", FirstSeen: t0.Add(time.Hour)})
	// Narrower event on a global entry: scope and reason stay, last_seen moves.
	mustAdd(t, f.l, Entry{Address: "ann@example.test", Reason: Unsubscribe, Scope: Marketing, Source: "one-click", FirstSeen: t0.Add(2 * time.Hour)})
	e, _ = f.l.Get(ctx, "ann@example.test")
	if e.Scope != Global || e.Reason != HardBounce || e.Code != 550 || !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after narrower event: %+v", e)
	}
	// Audit: bob add, bob update, ann add, ann update (widened); the
	// narrower event only refreshed last_seen and is not an event.
	if n := xlen(t, f); n != 4 {
		t.Fatalf("audit events = %d, want 4", n)
	}
	if n := hlen(t, f); n != 2 {
		t.Fatalf("entries = %d, want 2", n)
	}
	// Re-adding an identical entry changes nothing.
	mustAdd(t, f.l, Entry{Address: "ann@example.test", Reason: HardBounce, Code: 550, Source: "engine", FirstSeen: t0.Add(time.Hour)})
	if n := xlen(t, f); n != 4 {
		t.Fatalf("audit events after no-op = %d, want 4", n)
	}

	if e, err := f.l.Get(ctx, "nobody@example.test"); e != nil || err != nil {
		t.Fatalf("Get(clean) = %+v, %v", e, err)
	}
}

func TestAddRejects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	bad := []Entry{
		{Address: "x", Reason: Manual},
		{Address: "a@x.test", Reason: "bored"},
		{Address: "a@x.test", Reason: Manual, Scope: "everything"},
		{Address: "a@x.test", Reason: Manual, Code: 42},
		{Address: "a@x.test", Reason: Manual, Enhanced: "5.1"},
		{Address: "a@x.test", Reason: Manual, Campaign: "c\x1f1"},
		{Address: "a@x.test", Reason: Manual, FirstSeen: t0, LastSeen: t0.Add(-time.Second)},
	}
	for _, e := range bad {
		if err := f.l.Add(ctx, e); err == nil {
			t.Errorf("Add(%+v) accepted", e)
		}
	}
	// AddMany stores the valid ones and names the invalid.
	err := f.l.AddMany(ctx, []Entry{{Address: "ok1@x.test", Reason: Manual}, bad[1], {Address: "ok2@x.test", Reason: Manual}})
	if err == nil || !strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("AddMany error = %v", err)
	}
	if n := hlen(t, f); n != 2 {
		t.Fatalf("entries = %d, want 2", n)
	}
	// Long detail is cut at MaxDetail on a rune boundary.
	mustAdd(t, f.l, Entry{Address: "long@x.test", Reason: Manual, Detail: strings.Repeat("é", 400)})
	e, _ := f.l.Get(ctx, "long@x.test")
	if len(e.Detail) != MaxDetail || !strings.HasSuffix(e.Detail, "é") {
		t.Fatalf("detail len %d", len(e.Detail))
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustAdd(t, f.l,
		Entry{Address: "bounced@a.test", Reason: HardBounce},                 // global
		Entry{Address: "unsub@a.test", Reason: Unsubscribe},                  // marketing
		Entry{Address: "@dead.test", Reason: HardBounce},                     // whole domain, global
		Entry{Address: "@promo-free.test", Reason: Manual, Scope: Marketing}, // whole domain, marketing
		Entry{Address: "vip@promo-free.test", Reason: Manual},                // global inside a marketing domain
	)
	addrs := []string{
		"clean@a.test", "Bounced@A.test", "unsub@a.test", "anyone@dead.test", "x@promo-free.test",
		"vip@promo-free.test", "clean@a.test", "@dead.test", "other@b.test",
	}
	want := map[string][]string{ // the entry address expected at each index, "" = not blocked
		LaneMarketing:     {"", "bounced@a.test", "unsub@a.test", "@dead.test", "@promo-free.test", "vip@promo-free.test", "", "@dead.test", ""},
		LaneTransactional: {"", "bounced@a.test", "", "@dead.test", "", "vip@promo-free.test", "", "@dead.test", ""},
	}
	for lane, w := range want {
		f.hook.reset()
		got, err := f.l.Check(ctx, lane, addrs)
		if err != nil {
			t.Fatal(err)
		}
		if cmds, pipes := f.hook.counts(); cmds+pipes != 1 {
			t.Fatalf("%s: %d commands + %d pipelines, want one round trip", lane, cmds, pipes)
		}
		for i := range addrs {
			g := ""
			if got[i] != nil {
				g = got[i].Address
			}
			if g != w[i] {
				t.Errorf("%s: Check(%q) = %q, want %q", lane, addrs[i], g, w[i])
			}
		}
	}

	// A batch bigger than one HMGET is one pipeline.
	big := make([]string, 3*checkChunk)
	for i := range big {
		big[i] = "u" + strconv.Itoa(i) + "@d" + strconv.Itoa(i%20) + ".test"
	}
	big[len(big)-1] = "anyone@dead.test"
	f.hook.reset()
	got, err := f.l.Check(ctx, LaneTransactional, big)
	if err != nil {
		t.Fatal(err)
	}
	if cmds, pipes := f.hook.counts(); cmds != 0 || pipes != 1 {
		t.Fatalf("big batch: %d commands + %d pipelines, want 1 pipeline", cmds, pipes)
	}
	blocked := 0
	for _, e := range got {
		if e != nil {
			blocked++
		}
	}
	if blocked != 1 || got[len(got)-1] == nil {
		t.Fatalf("big batch blocked %d", blocked)
	}

	if _, err := f.l.Check(ctx, LaneMarketing, []string{"ok@a.test", "not-an-address"}); !errors.Is(err, ErrInvalidAddress) || !strings.Contains(err.Error(), "address 1") {
		t.Fatalf("bad address: %v", err)
	}
	if _, err := f.l.Check(ctx, "bulk", addrs); err == nil {
		t.Fatal("unknown lane accepted")
	}
}

func TestRemoveAudit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	mustAdd(t, f.l,
		Entry{Address: "a@x.test", Reason: HardBounce, Detail: "550 no such user", Campaign: "spring", Source: "engine"},
		Entry{Address: "@x.test", Reason: Manual, Scope: Marketing, Source: "campaignctl", Detail: "partner asked"},
		Entry{Address: "b@y.test", Reason: Manual, Source: "campaignctl"})
	// The address and its domain may be in two shards, whose events of
	// one millisecond have no order between them.
	time.Sleep(2 * time.Millisecond)
	ok, err := f.l.Remove(ctx, "A@X.test", "alice", "mailbox exists again")
	if err != nil || !ok {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if ok, err := f.l.Remove(ctx, "a@x.test", "alice", "again"); ok || err != nil {
		t.Fatalf("second Remove = %v, %v", ok, err)
	}
	// The domain entry is untouched and now answers for the address.
	e, err := f.l.Get(ctx, "a@x.test")
	if err != nil || e == nil || e.Address != "@x.test" {
		t.Fatalf("Get after remove = %+v, %v", e, err)
	}
	ev, err := f.l.Audit(ctx, "a@x.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 3 {
		t.Fatalf("audit = %+v, want 3 events", ev)
	}
	if ev[0].Action != "add" || ev[0].Address != "a@x.test" || ev[0].Actor != "engine" || ev[0].Why != "550 no such user" ||
		ev[0].Reason != HardBounce || ev[0].Scope != Global || ev[0].Campaign != "spring" {
		t.Errorf("event 0 = %+v", ev[0])
	}
	if ev[1].Action != "add" || ev[1].Address != "@x.test" || ev[1].Scope != Marketing {
		t.Errorf("event 1 = %+v", ev[1])
	}
	if ev[2].Action != "remove" || ev[2].Actor != "alice" || ev[2].Why != "mailbox exists again" || ev[2].Reason != HardBounce {
		t.Errorf("event 2 = %+v", ev[2])
	}
	if time.Since(ev[2].Time) > time.Minute || ev[2].Time.Before(ev[0].Time) {
		t.Errorf("event times %v %v", ev[0].Time, ev[2].Time)
	}
	if n := hlen(t, f); n != 2 {
		t.Fatalf("entries = %d, want 2", n)
	}
}

func TestAuditCap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, WithAuditCap(100))
	es := make([]Entry, 5000)
	for i := range es {
		es[i] = Entry{Address: "u" + strings.Repeat("x", i%50) + "@c" + strconv.Itoa(i) + ".test", Reason: Manual}
	}
	if err := f.l.AddMany(ctx, es); err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole stream nodes (100 events), so each shard's
	// length is near its share of the cap, never the 5,000 events written.
	if n := xlen(t, f); n < 100 || n > 100+keyspace.Shards*100 {
		t.Fatalf("audit length %d with cap 100", n)
	}
}

func TestSoftBounce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	lim := SoftLimit{Count: 3, Span: 72 * time.Hour}
	bounce := Entry{Code: 452, Enhanced: "4.2.2", Detail: "mailbox full", Campaign: "c9", Lane: "marketing"}
	for i, at := range []time.Duration{0, 24 * time.Hour, 48 * time.Hour} {
		s, err := f.l.NoteSoftBounce(ctx, "Full@x.test", bounce, t0.Add(at), lim)
		if err != nil || s {
			t.Fatalf("bounce %d: suppressed=%v err=%v", i, s, err)
		}
	}
	// Three bounces, but only 48h apart: not yet.
	if e, _ := f.l.Get(ctx, "full@x.test"); e != nil {
		t.Fatalf("suppressed early: %+v", e)
	}
	s, err := f.l.NoteSoftBounce(ctx, "full@x.test", bounce, t0.Add(80*time.Hour), lim)
	if err != nil || !s {
		t.Fatalf("4th bounce: suppressed=%v err=%v", s, err)
	}
	e, _ := f.l.Get(ctx, "full@x.test")
	if e == nil || e.Reason != SoftBounceLimit || e.Scope != Global || !e.FirstSeen.Equal(t0) ||
		!e.LastSeen.Equal(t0.Add(80*time.Hour)) || e.Code != 452 || e.Source != "engine" ||
		e.Detail != "4 soft bounces since 2025-03-01T12:00:00Z; last: mailbox full" {
		t.Fatalf("entry = %+v", e)
	}
	if n, _ := f.rdb.Exists(ctx, f.l.softKey("full@x.test")).Result(); n != 0 {
		t.Fatal("counter left behind")
	}

	// Many bounces in a short time do not reach the span.
	for i := range 10 {
		if s, err := f.l.NoteSoftBounce(ctx, "busy@x.test", bounce, t0.Add(time.Duration(i)*time.Minute), lim); s || err != nil {
			t.Fatalf("busy: %v %v", s, err)
		}
	}
	if err := f.l.ClearSoftBounces(ctx, "busy@x.test"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.rdb.Exists(ctx, f.l.softKey("busy@x.test")).Result(); n != 0 {
		t.Fatal("ClearSoftBounces left the counter")
	}
	// A streak expires after the idle time.
	short := SoftLimit{Count: 2, Span: 0, Idle: 30 * time.Millisecond}
	if s, _ := f.l.NoteSoftBounce(ctx, "idle@x.test", bounce, t0, short); s {
		t.Fatal("idle: first bounce suppressed")
	}
	time.Sleep(80 * time.Millisecond)
	if s, _ := f.l.NoteSoftBounce(ctx, "idle@x.test", bounce, t0, short); s {
		t.Fatal("idle: streak survived the idle time")
	}
	if s, _ := f.l.NoteSoftBounce(ctx, "idle@x.test", bounce, t0, short); !s {
		t.Fatal("idle: second bounce in a streak not suppressed")
	}
	if _, err := f.l.NoteSoftBounce(ctx, "@x.test", bounce, t0, lim); err == nil {
		t.Fatal("domain accepted")
	}
	if _, err := f.l.NoteSoftBounce(ctx, "a@x.test", bounce, t0, SoftLimit{}); err == nil {
		t.Fatal("zero limit accepted")
	}
}

// Merge counts what it did, audits under actor, and refuses a bad actor
// before storing anything.
func TestMerge(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	es := []Entry{{Address: "a@x.test", Reason: Manual, FirstSeen: t0}, {Address: "b@x.test", Reason: HardBounce, FirstSeen: t0}}
	for i := range es {
		if err := es[i].Prepare(t0); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := f.l.Merge(ctx, es, "restore"); err != nil || c != (Counts{Added: 2}) {
		t.Fatalf("first merge: %+v %v", c, err)
	}
	es[1].Reason, es[1].Scope = Complaint, Global
	if c, err := f.l.Merge(ctx, es, "restore"); err != nil || c != (Counts{Updated: 1, Unchanged: 1}) {
		t.Fatalf("second merge: %+v %v", c, err)
	}
	if ev, _ := f.l.Audit(ctx, "a@x.test"); len(ev) != 1 || ev[0].Actor != "restore" {
		t.Fatalf("audit: %+v", ev)
	}
	if _, err := f.l.Merge(ctx, es, "bad\nactor"); err == nil || hlen(t, f) != 2 {
		t.Fatalf("bad actor: %v", err)
	}
}
