package launch

import (
	"fmt"
	"testing"
)

func TestSeenNeverForgets(t *testing.T) {
	s := newSeen(10000)
	fresh := 0
	for i := 0; i < 10000; i++ {
		if !s.add(fmt.Sprintf("user%d@example.test", i)) {
			fresh++
		}
	}
	// Sized for 10,000: a false "maybe" is rare (each costs a look-up).
	if fresh < 9990 {
		t.Fatalf("%d of 10000 new addresses said new", fresh)
	}
	for i := 0; i < 10000; i++ {
		if !s.add(fmt.Sprintf("user%d@example.test", i)) {
			t.Fatalf("user%d said new the second time", i)
		}
	}
}

func TestSeenStaysBounded(t *testing.T) {
	if n := len(newSeen(1<<30).bits) * 8; n != seenBits/8 {
		t.Fatalf("a filter for 2^30 addresses holds %d bytes, want %d", n, seenBits/8)
	}
}
