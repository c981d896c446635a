// Package keyspace names Redis keys and places them in hash slots.
//
// A deployment's keys live under one prefix in two kinds of hash tag:
//
//   - Key: "{prefix}:..." for what is small and shared (campaign
//     definitions and state, the campaign index, engine heartbeats).
//   - Own: "{prefix~name}:..." for state of one thing that is touched
//     often and alone (a throttle key's shared state).
//   - In: "{prefix.N.S}:..." for one of Shards partitions (N in
//     0..Shards-1) of what grows with the mail: lane streams, lines,
//     retry sets, recipient records, counters, events, the suppression
//     list. A job, its recipient's record, its campaign's counters for
//     that partition and the line it waits in share one shard, so every
//     script that moves or settles a job touches one hash slot.
//
// The salt S of each shard's tag is chosen so shard N's hash slot falls in
// the middle of the N-th of Shards equal slot ranges: a Redis Cluster
// whose masters own equal contiguous ranges (what `redis-cli --cluster
// create` makes) gets an equal number of shards per master when the
// masters number 1, 2, 3, 4, 6 or 12, and so does one grown from three to
// four or six masters by `redis-cli --cluster rebalance`, which moves the
// slots at the start of each range. On a single Redis, shards are just
// key names.
package keyspace

import (
	"strconv"
	"strings"
	"sync"
)

// Shards is the number of partitions. It is part of the key layout: a
// deployment's data is written under it, so it never changes for one.
const Shards = 12

// Space is a key prefix, e.g. "sluice".
type Space string

// Key joins parts under the space's shared hash tag: Space("sluice").Key("c",
// "42") is "{sluice}:c:42".
func (s Space) Key(parts ...string) string {
	return join("{"+string(s)+"}", parts)
}

// In joins parts under shard's hash tag: Space("sluice").In(3, "line", "x")
// is "{sluice.3.S}:line:x" for the shard's salt S.
func (s Space) In(shard int, parts ...string) string {
	return join(s.Tag(shard), parts)
}

// Own joins parts under a hash tag of their own, for state that one key
// of a kind holds alone (a throttle key's shared state): Space("sluice").Own(
// "thr:gmail", "eng") is "{sluice~thr:gmail}:eng". Such keys spread over a
// cluster by their names.
func (s Space) Own(tag string, parts ...string) string {
	return join("{"+string(s)+"~"+tag+"}", parts)
}

// Tag is shard's hash tag, braces included.
func (s Space) Tag(shard int) string {
	if shard < 0 || shard >= Shards {
		panic("keyspace: shard " + strconv.Itoa(shard) + " out of range")
	}
	return tags(s)[shard]
}

// ShardOf is the shard of an identity: the lower-cased recipient address
// for campaign jobs and suppression entries, the message id for
// transactional mail. FNV-1a, so every engine and campaignctl agree.
func ShardOf(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint32(c)
		h *= 16777619
	}
	return int(h % Shards)
}

// Slot is the Redis Cluster hash slot of key (CRC16 of its hash tag).
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % 16384)
}

func join(tag string, parts []string) string {
	n := len(tag) + len(parts) // a colon before each part
	for _, p := range parts {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n) // one allocation: engines build keys for every job
	b.WriteString(tag)
	for _, p := range parts {
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

var tagCache sync.Map // Space -> []string

func tags(s Space) []string {
	if t, ok := tagCache.Load(s); ok {
		return t.([]string)
	}
	t := make([]string, Shards)
	const width = 16384 / Shards
	for n := range t {
		base := string(s) + "." + strconv.Itoa(n) + "."
		lo, hi := n*16384/Shards+width/4, n*16384/Shards+3*width/4
		for salt := 0; ; salt++ {
			tag := base + strconv.Itoa(salt)
			if slot := int(crc16(tag) % 16384); slot >= lo && slot < hi {
				t[n] = "{" + tag + "}"
				break
			}
		}
	}
	tagCache.Store(s, t)
	return t
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
