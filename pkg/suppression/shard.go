package suppression

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-mta/sluice/pkg/keyspace"
)

// The list is sharded by what an entry is stored under (its address, or
// "@domain" for a domain): keyspace.ShardOf of it names one of
// keyspace.Shards shards, each with its own entries hash
// {prefix.N.S}:supp:entries and audit stream {prefix.N.S}:supp:audit. An
// entry and the audit events about it are in one shard, so the scripts
// that write both touch one hash slot; a soft-bounce counter
// {prefix.N.S}:supp:soft:ADDR is in its address's shard too.

func shardOf(field string) int { return keyspace.ShardOf(field) }

func (l *List) entriesKey(n int) string { return l.space.In(n, "supp", "entries") }
func (l *List) auditKey(n int) string   { return l.space.In(n, "supp", "audit") }
func (l *List) softKey(addr string) string {
	return l.space.In(shardOf(addr), "supp", "soft", addr)
}

// byShard groups the indexes 0..n-1 by the shard of field(i), each group
// in input order.
func byShard(n int, field func(int) string) [keyspace.Shards][]int {
	of := make([]uint8, n)
	var size [keyspace.Shards]int
	for i := range n {
		of[i] = uint8(shardOf(field(i)))
		size[of[i]]++
	}
	all := make([]int, n) // one allocation, cut into the groups
	var g [keyspace.Shards][]int
	start := 0
	for s, k := range size {
		g[s] = all[start : start : start+k]
		start += k
	}
	for i, s := range of {
		g[s] = append(g[s], i)
	}
	return g
}

// hmget reads fields from their shards' hashes in one round trip: one
// HMGET per shard, those of more than checkChunk fields cut up. The
// values come back in the order of fields.
func (l *List) hmget(ctx context.Context, fields []string) ([]any, error) {
	groups := byShard(len(fields), func(i int) string { return fields[i] })
	type read struct {
		cmd *redis.SliceCmd
		idx []int
	}
	reads := make([]read, 0, keyspace.Shards)
	names := make([]string, len(fields)) // fields in shard order, cut per HMGET
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		at := 0
		for n, g := range groups {
			for start := 0; start < len(g); start += checkChunk {
				idx := g[start:min(start+checkChunk, len(g))]
				names := names[at : at+len(idx)]
				at += len(idx)
				for k, i := range idx {
					names[k] = fields[i]
				}
				reads = append(reads, read{p.HMGet(ctx, l.entriesKey(n), names...), idx})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(fields))
	for _, r := range reads {
		for k, v := range r.cmd.Val() {
			vals[r.idx[k]] = v
		}
	}
	return vals, nil
}

// Size is the number of entries (addresses and domains) on the list.
func (l *List) Size(ctx context.Context) (int64, error) {
	var cmds []*redis.IntCmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for n := range keyspace.Shards {
			cmds = append(cmds, p.HLen(ctx, l.entriesKey(n)))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("suppression size: %w", err)
	}
	var sum int64
	for _, c := range cmds {
		sum += c.Val()
	}
	return sum, nil
}

// streamOrder orders stream ids "MS-SEQ" of different streams by time,
// then sequence.
func streamOrder(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	if c := cmp.Compare(num(am), num(bm)); c != 0 {
		return c
	}
	return cmp.Compare(num(as), num(bs))
}

// sortAudit puts events of several shards' streams in time order; events
// of one shard keep their order.
func sortAudit(evs []AuditEvent) {
	slices.SortStableFunc(evs, func(a, b AuditEvent) int { return streamOrder(a.ID, b.ID) })
}
