package events

import (
	"encoding/json"
	"testing"
	"time"
)

// TestEncodeMatchesEncodingJSON: Encode's fast path writes json.Marshal's
// bytes, for every field empty or not and for text JSON escapes or
// encoding/json rewrites, so readers (and the Lua scripts' cjson) see the
// events they always did.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	texts := []string{"", "a", "user@example.test", "Zürich \"q\" \\ </b> & \n\r\t\b\f\x00\x1f\x7f", "\u2028\u2029\xff\xe2\x82😀"}
	times := []time.Time{
		time.Date(2026, 12, 1, 0, 24, 33, 123456789, time.UTC),
		time.Date(2026, 12, 1, 0, 24, 33, 0, time.FixedZone("CET", 3600)),
		time.Date(2026, 12, 1, 0, 24, 33, 100e6, time.UTC),
		{},
	}
	n := 0
	for i := 0; i < 400; i++ {
		s := func(k int) string { return texts[(i/(k+1)+k)%len(texts)] }
		e := Event{ID: s(0), Type: Type(s(1)), Time: times[i%len(times)], Campaign: s(2), Job: s(3), Recipient: s(4),
			Code: []int{0, 250, -1}[i%3], Enhanced: s(5), Reply: s(6), MX: s(7), Attempt: []int{0, 3}[i%2], Reason: s(8)}
		want := e
		want.ID = ""
		want.Time = want.Time.UTC().Truncate(time.Millisecond)
		wb, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Encode(); got != string(wb) {
			t.Fatalf("Encode(%+v)\n got %s\nwant %s", e, got, wb)
		}
		if _, ok := want.appendJSON(nil); ok {
			n++
		}
	}
	if n < 300 {
		t.Fatalf("the fast path wrote only %d of 400", n)
	}
}
