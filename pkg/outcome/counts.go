package outcome

// Counter names, as kept in every tally's counters hash: Total recipients,
// Queued (not final yet, including those Deferred), and one per final
// status, named as the status.
const (
	Total = "total"
)

// Counters lists every counter a tally keeps, in the order Counts has them.
var Counters = []string{Total, string(Queued), string(Delivered), string(Deferred), string(Bounced),
	string(Suppressed), string(Failed), string(Cancelled)}

// Counts are recipients by outcome. Queued includes Deferred (not final
// yet).
type Counts struct {
	Total      int64 `json:"total"`
	Queued     int64 `json:"queued"`
	Delivered  int64 `json:"delivered"`
	Deferred   int64 `json:"deferred"`
	Bounced    int64 `json:"bounced"`
	Suppressed int64 `json:"suppressed"`
	Failed     int64 `json:"failed"`
	Cancelled  int64 `json:"cancelled"`
}

// Add counts one recipient whose record holds status. A status this
// version does not know counts as queued: not final.
func (c *Counts) Add(status string) {
	c.Total++
	if p := c.counter(status); p != nil && p != &c.Total {
		*p++
		if status != string(Deferred) {
			return
		}
	}
	c.Queued++
}

// Set sets the counter named name (one of Counters); other names are
// ignored.
func (c *Counts) Set(name string, v int64) {
	if p := c.counter(name); p != nil {
		*p = v
	}
}

func (c *Counts) counter(name string) *int64 {
	switch name {
	case Total:
		return &c.Total
	case string(Queued):
		return &c.Queued
	case string(Delivered):
		return &c.Delivered
	case string(Deferred):
		return &c.Deferred
	case string(Bounced):
		return &c.Bounced
	case string(Suppressed):
		return &c.Suppressed
	case string(Failed):
		return &c.Failed
	case string(Cancelled):
		return &c.Cancelled
	}
	return nil
}

// Merge adds o's counts to c.
func (c *Counts) Merge(o Counts) {
	for _, name := range Counters {
		*c.counter(name) += *o.counter(name)
	}
}
