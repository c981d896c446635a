package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluice-mta/sluice/pkg/jsonenc"
)

// RunField is the field of an entry holding a run: events of one type,
// time and campaign, one a job, such as a launch's queued events, as a
// JSON object {"type", "time", "campaign", "jobs": [job, recipient, job,
// recipient, ...]}. A reader sees the events it stands for, one after
// the other, as those of a BatchField entry: a third of the bytes.
const RunField = "er"

// Run is the events of a RunField entry.
type Run struct {
	Type     Type
	Time     time.Time
	Campaign string
	Jobs     []string // a job id, then its recipient, and so on
}

// Append appends r's encoding to b; ok is false for a time JSON cannot
// hold (see Event.Encode).
func (r Run) Append(b []byte) (_ []byte, ok bool) {
	b = jsonenc.AppendField(append(b, '{'), "type", string(r.Type), true)
	b = append(b, `,"time":`...)
	if b, ok = jsonenc.AppendTime(b, r.Time.UTC().Truncate(time.Millisecond)); !ok {
		return b, false
	}
	b = jsonenc.AppendNonEmpty(b, "campaign", r.Campaign)
	b = append(b, `,"jobs":[`...)
	for i, s := range r.Jobs {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, s)
	}
	return append(b, "]}"...), true
}

// Events returns the events r stands for.
func (r Run) Events() []Event {
	out := make([]Event, len(r.Jobs)/2)
	for i := range out {
		out[i] = Event{Type: r.Type, Time: r.Time, Campaign: r.Campaign, Job: r.Jobs[2*i], Recipient: r.Jobs[2*i+1]}
	}
	return out
}

// DecodeRun parses a RunField entry's value.
func DecodeRun(raw string) (Run, error) {
	var v struct {
		Type     Type      `json:"type"`
		Time     time.Time `json:"time"`
		Campaign string    `json:"campaign"`
		Jobs     []string  `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return Run{}, fmt.Errorf("a run of events: %w", err)
	}
	if len(v.Jobs)%2 != 0 {
		return Run{}, fmt.Errorf("a run of events: %d jobs and recipients, not in pairs", len(v.Jobs))
	}
	return Run{Type: v.Type, Time: v.Time, Campaign: v.Campaign, Jobs: v.Jobs}, nil
}
