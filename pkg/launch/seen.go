package launch

import "hash/maphash"

// seen is a Bloom filter of the addresses a launch has read: an address
// it has not seen cannot be in the campaign's records yet (every earlier
// row's address was added, those of rows a resumed launch skips too;
// and another launch writing the campaign is refused by the shards'
// checkpoints, streams.Batch.Since), so its enqueue need not look the
// record up. One it may have seen is looked up, as every row was before:
// a false positive costs a look-up, never a wrong answer. Its size is
// fixed at the start (32 bits a row, at most seenBits), so a launch's
// memory stays flat in the list's size.
type seen struct {
	seed maphash.Seed
	bits []uint64
	mask uint64
}

// seenBits bounds the filter: 2^24 bits, 2 MiB. With 4 probes it answers
// "maybe" for 0.24% of new addresses at a million rows, 70% at ten
// million (each then costs a look-up, as every row did before: the
// look-ups are about 3% of redis-server's work per row, not worth more
// memory).
const seenBits = 1 << 24

// newSeen makes a filter for about n addresses: 32 bits each, at most
// seenBits.
func newSeen(n int) *seen {
	size := uint64(1 << 12)
	for size < uint64(n)*32 && size < seenBits {
		size <<= 1
	}
	return &seen{seed: maphash.MakeSeed(), bits: make([]uint64, size/64), mask: size - 1}
}

// add adds addr and reports whether it may have been added before.
func (s *seen) add(addr string) (maybe bool) {
	h := maphash.String(s.seed, addr)
	h1, h2 := h, h>>32|1
	maybe = true
	for i := uint64(0); i < 4; i++ {
		b := (h1 + i*h2) & s.mask
		w, bit := b/64, uint64(1)<<(b%64)
		if s.bits[w]&bit == 0 {
			maybe = false
			s.bits[w] |= bit
		}
	}
	return maybe
}
