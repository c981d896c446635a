package message

import (
	"sync/atomic"
	"time"
)

// dateText is a Date header's value, formatted for one second in one
// location.
type dateText struct {
	sec  int64
	loc  *time.Location
	text []byte
}

// lastDate is the value formatted last: a campaign's messages share the
// second they are sent in, and formatting it (a zone lookup, the layout)
// was 2% of the engine's CPU per message.
var lastDate atomic.Pointer[dateText]

// appendDate appends t as RFC 1123 with a numeric zone, as
// t.AppendFormat(b, time.RFC1123Z) does: the offset at an instant in a
// location is fixed, so the text of a second is too.
func appendDate(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	if d := lastDate.Load(); d != nil && d.sec == sec && d.loc == loc {
		return append(b, d.text...)
	}
	d := &dateText{sec: sec, loc: loc, text: t.AppendFormat(nil, time.RFC1123Z)}
	lastDate.Store(d)
	return append(b, d.text...)
}
