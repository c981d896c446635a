package suppression

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An entry is stored as one string of fields separated by the ASCII unit
// separator (0x1F), which Entry.Prepare keeps out of every text field:
//
//	1 US scope US first US last US reason US code US enhanced US campaign US lane US source US detail
//
// "1" is the format version; scope and reason are one letter; times are
// Unix seconds; code is empty when 0. Version, scope and times lead so the
// upsert script (scripts.go) can merge two entries with one pattern match
// without knowing the rest. A typical bounce entry is ~60 bytes plus its
// reply text, about a third of the same entry as JSON.
const (
	sep           = "\x1f"
	formatVersion = "1"
	nFields       = 11
)

func encode(e Entry) string {
	var b strings.Builder
	b.Grow(48 + len(e.Enhanced) + len(e.Campaign) + len(e.Lane) + len(e.Source) + len(e.Detail))
	b.WriteString(formatVersion)
	b.WriteString(sep)
	b.WriteByte(scopeCode[e.Scope])
	b.WriteString(sep)
	b.WriteString(strconv.FormatInt(e.FirstSeen.Unix(), 10))
	b.WriteString(sep)
	b.WriteString(strconv.FormatInt(e.LastSeen.Unix(), 10))
	b.WriteString(sep)
	b.WriteByte(reasonCode[e.Reason])
	b.WriteString(sep)
	if e.Code != 0 {
		b.WriteString(strconv.Itoa(e.Code))
	}
	for _, s := range []string{e.Enhanced, e.Campaign, e.Lane, e.Source, e.Detail} {
		b.WriteString(sep)
		b.WriteString(s)
	}
	return b.String()
}

// Decode returns the entry of addr from its stored encoding, as ScanStored
// passes it.
func Decode(addr, v string) (Entry, error) {
	f := strings.SplitN(v, sep, nFields)
	if len(f) != nFields || f[0] != formatVersion || len(f[1]) != 1 || len(f[4]) != 1 {
		return Entry{}, fmt.Errorf("suppression: entry %q: unknown encoding %q", addr, v)
	}
	e := Entry{
		Address: addr, Scope: codeScope[f[1][0]], Reason: codeReason[f[4][0]],
		Enhanced: f[6], Campaign: f[7], Lane: f[8], Source: f[9], Detail: f[10],
	}
	first, err1 := strconv.ParseInt(f[2], 10, 64)
	last, err2 := strconv.ParseInt(f[3], 10, 64)
	if e.Scope == "" || e.Reason == "" || err1 != nil || err2 != nil {
		return Entry{}, fmt.Errorf("suppression: entry %q: corrupt encoding %q", addr, v)
	}
	e.FirstSeen, e.LastSeen = time.Unix(first, 0).UTC(), time.Unix(last, 0).UTC()
	if f[5] != "" {
		if e.Code, err1 = strconv.Atoi(f[5]); err1 != nil {
			return Entry{}, fmt.Errorf("suppression: entry %q: corrupt code %q", addr, f[5])
		}
	}
	return e, nil
}
