package suppression

import (
	"context"
	"fmt"
)

// checkChunk bounds the fields of one HMGET so a launch checking a million
// recipients does not hold Redis in one multi-second command; bigger
// batches become a pipeline of HMGETs, still one round trip.
const checkChunk = 4096

// Check reports, in one round trip (an HMGET per shard, pipelined), which of addrs must not get mail of
// lane (LaneMarketing or LaneTransactional): result[i] is the blocking
// entry of addrs[i] (its own, else its domain's), nil when it may be
// mailed. Global entries block both lanes, marketing entries only
// marketing. Results for addresses that share an entry (a domain entry,
// repeated addresses) point to the same Entry. An address that does not
// normalise fails the whole call with ErrInvalidAddress and its index: the
// caller must not mail it either way.
func (l *List) Check(ctx context.Context, lane string, addrs []string) ([]*Entry, error) {
	if lane != LaneMarketing && lane != LaneTransactional {
		return nil, fmt.Errorf("suppression: check: unknown lane %q (want %s or %s)", lane, LaneMarketing, LaneTransactional)
	}
	out := make([]*Entry, len(addrs))
	if len(addrs) == 0 {
		return out, nil
	}
	// Each distinct address and domain is asked for once.
	index := make(map[string]int, len(addrs)+len(addrs)/4)
	fields := make([]string, 0, len(addrs)+len(addrs)/4)
	field := func(f string) int {
		if i, ok := index[f]; ok {
			return i
		}
		index[f] = len(fields)
		fields = append(fields, f)
		return len(fields) - 1
	}
	refs := make([][2]int, len(addrs)) // own field, domain field (-1 for "@domain" input)
	for i, a := range addrs {
		f, err := Normalize(a)
		if err != nil {
			return nil, fmt.Errorf("suppression: check: address %d: %w", i, err)
		}
		refs[i] = [2]int{field(f), -1}
		if f[0] != '@' {
			refs[i][1] = field(domainOf(f))
		}
	}
	vals, err := l.hmget(ctx, fields)
	if err != nil {
		return nil, fmt.Errorf("suppression: check: %w", err)
	}
	entries := make([]*Entry, len(fields))
	get := func(fi int) (*Entry, error) {
		if fi < 0 {
			return nil, nil
		}
		s, ok := vals[fi].(string)
		if !ok || entries[fi] != nil {
			return entries[fi], nil
		}
		e, err := Decode(fields[fi], s)
		if err != nil {
			return nil, err
		}
		entries[fi] = &e
		return &e, nil
	}
	for i, r := range refs {
		for _, fi := range r {
			e, err := get(fi)
			if err != nil {
				return nil, fmt.Errorf("suppression: check: %w", err)
			}
			if e != nil && e.Blocks(lane) {
				out[i] = e
				break
			}
		}
	}
	return out, nil
}
