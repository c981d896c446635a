package engine

import (
	"testing"

	"github.com/sluice-mta/sluice/pkg/deliver"
)

// order places a pool's sources by weight: with weights 3 and 1, the
// first comes first about three times in four; every order holds each
// source once.
func TestOrderIsWeighted(t *testing.T) {
	pool := []poolSource{{src: deliver.Source{Name: "heavy"}, weight: 3}, {src: deliver.Source{Name: "light"}, weight: 1}}
	const draws = 4000
	first := 0
	for range draws {
		o := order(pool)
		if len(o) != 2 || o[0].src.Name == o[1].src.Name {
			t.Fatalf("order %v", o)
		}
		if o[0].src.Name == "heavy" {
			first++
		}
	}
	if f := float64(first) / draws; f < 0.70 || f > 0.80 {
		t.Fatalf("heavy first in %.2f of orders, want ~0.75", f)
	}
	if len(pool) != 2 || pool[0].src.Name != "heavy" {
		t.Fatalf("order changed the pool: %v", pool)
	}
}
