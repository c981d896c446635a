package streams

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A launch's jobs go in a lane as packs: entries of several jobs
// (Batch.Pack), each job read as a Delivery of its own (Delivery.Pack),
// a pack let go of only as a whole (Queue.Route), put back whole by a
// restart or a takeover.

// PackField is the field of a lane entry holding several jobs (a
// launch's), encoded one after the other, each ended by a newline (an
// encoded job has none: JSON escapes it). An entry of one job has the
// field JobField.
const (
	PackField = "p"
	JobField  = "j"
)

// packs is the key of lane l's count of packs in shard (a hash: entries,
// jobs), so its depth counts jobs (Depth): added to by the enqueue that
// makes packs, taken from by the route that lets them go.
func (q *Queue) packs(shard int, l Lane) string { return q.ks.In(shard, "packs", string(l)) }

// luaEntryJobs reads a stream entry's fields: entryJobs returns the
// field holding its jobs (JobField or PackField) and its value (nil for
// neither), jobsIn how many jobs that value holds.
const luaEntryJobs = `
local function entryJobs(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'j' or fields[i] == 'p' then return fields[i], fields[i + 1] end
  end
end
local function jobsIn(f, raw)
  if f == 'p' then return select(2, string.gsub(raw, '\n', '')) end
  return 1
end
`

// packsOf returns the packs of the jobs among items at pos: in order, as
// few packs as hold at most size jobs each, all of one size but the last.
func packsOf(items []batchItem, pos []int, size int) []string {
	jobs, bytes := 0, 0
	for _, i := range pos {
		if items[i].kind == 'j' {
			jobs++
			bytes += len(items[i].payload) + 1
		}
	}
	if jobs == 0 {
		return nil
	}
	n := (jobs + size - 1) / size
	each := (jobs + n - 1) / n
	out := make([]string, 0, n)
	var p strings.Builder // its String is the bytes written, not a copy
	in := 0
	for _, i := range pos {
		if items[i].kind != 'j' {
			continue
		}
		if in == 0 {
			p.Grow(bytes/n + each)
		}
		p.WriteString(items[i].payload)
		p.WriteByte('\n')
		if in++; in == each {
			out, in = append(out, p.String()), 0
			p = strings.Builder{}
		}
	}
	if in > 0 {
		out = append(out, p.String())
	}
	return out
}

// appendPack appends the jobs of the pack entry id of stream.
func appendPack(out []Delivery, id, stream, pack string) ([]Delivery, error) {
	if pack == "" {
		return out, fmt.Errorf("stream entry %s: an empty pack", id)
	}
	start := len(out)
	for rest := pack; rest != ""; {
		raw, after, ok := strings.Cut(rest, "\n")
		if !ok {
			return out, fmt.Errorf("stream entry %s: a pack's last job without its ending newline", id)
		}
		rest = after
		j, err := decodeJob(raw)
		if err != nil {
			return out, fmt.Errorf("stream entry %s: %w", id, err)
		}
		out = append(out, Delivery{Job: j, StreamID: id, Raw: raw, Stream: stream})
	}
	if n := len(out) - start; n > 1 {
		for i := start; i < len(out); i++ {
			out[i].Pack = n
		}
	}
	return out, nil
}

// packJobs counts the jobs of res's entries.
func packJobs(res []redis.XStream) int {
	n := 0
	for _, s := range res {
		for _, m := range s.Messages {
			if pack, ok := m.Values[PackField].(string); ok {
				n += strings.Count(pack, "\n")
			} else {
				n++
			}
		}
	}
	return n
}

// entry is one stream entry's jobs among some deliveries: its id, the
// field and value that hold them as stored (a pack's jobs joined again),
// how many jobs of it the deliveries have, and whether that is all of
// them.
type entry struct {
	id, field, value string
	jobs             int
	whole            bool
}

// entriesOf groups ds by entry, in order of first appearance.
func entriesOf(ds []Delivery) []entry {
	var out []entry
	at := map[string]int{}
	var packs map[string]*strings.Builder
	for _, d := range ds {
		i, ok := at[d.StreamID]
		if !ok {
			i = len(out)
			at[d.StreamID] = i
			out = append(out, entry{id: d.StreamID, field: JobField, value: d.Raw, whole: d.Pack <= 1})
			if d.Pack > 1 {
				if packs == nil {
					packs = map[string]*strings.Builder{}
				}
				packs[d.StreamID] = &strings.Builder{}
			}
		}
		out[i].jobs++
		if b := packs[d.StreamID]; b != nil {
			b.WriteString(d.Raw)
			b.WriteByte('\n')
			out[i].field, out[i].whole = PackField, out[i].jobs == d.Pack
		}
	}
	for i := range out {
		if b := packs[out[i].id]; b != nil {
			out[i].value = b.String()
		}
	}
	return out
}
