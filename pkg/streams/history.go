package streams

import "github.com/sluice-mta/sluice/pkg/text"

// HistoryLimit is how many attempts a record keeps: its own last one and
// up to HistoryLimit-1 earlier ones.
const HistoryLimit = 10

// historyReplyLimit clips the replies of earlier attempts.
const historyReplyLimit = 200

// Attempt is one delivery attempt as history keeps it.
type Attempt struct {
	At       int64  `json:"at"` // unix ms
	Status   string `json:"s,omitempty"`
	Host     string `json:"h,omitempty"`
	Code     int    `json:"c,omitempty"`
	Enhanced string `json:"e,omitempty"`
	Reply    string `json:"r,omitempty"`
	Src      string `json:"src,omitempty"` // the egress source it left from
}

// History is the record's attempts, oldest first: the earlier ones it
// carries (Record.Earlier) and its own last one (none when it has no
// attempt time: queued, suppressed at launch).
func (r Record) History() []Attempt {
	h := append([]Attempt(nil), r.Earlier...)
	if r.At > 0 && r.Attempts > 0 {
		h = append(h, Attempt{At: r.At, Status: r.Status, Host: r.Host, Code: r.Code, Enhanced: r.Enhanced,
			Reply: text.Clip(r.Reply, historyReplyLimit), Src: r.Src})
	}
	return h
}

// NextEarlier is what the next attempt's record carries as Earlier: this
// record's history, the last HistoryLimit-1 attempts of it. A deferred
// job takes it along (Job.History) to its next attempt.
func (r Record) NextEarlier() []Attempt {
	h := r.History()
	if len(h) > HistoryLimit-1 {
		h = h[len(h)-(HistoryLimit-1):]
	}
	return h
}
