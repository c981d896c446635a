package bulk

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// runSorter sorts (key, value) pairs by key in bounded memory: pairs are
// buffered up to limit bytes, then sorted and spilled to a temporary file
// (a "run"); the runs are merged at the end. Export uses it so the same
// content always exports to the same bytes (Redis hash order depends on
// insertion history) and so that an entry HSCAN returned twice is
// written once.
type runSorter struct {
	dir   string
	limit int
	buf   []pair
	size  int
	runs  []*os.File
	names []string // runs the OS would not unlink while open
}

type pair struct{ k, v string }

func newRunSorter(dir string, limit int) *runSorter { return &runSorter{dir: dir, limit: limit} }

func (s *runSorter) add(k, v string) error {
	s.buf = append(s.buf, pair{k, v})
	s.size += len(k) + len(v) + 48 // string headers and slice slot
	if s.size >= s.limit {
		return s.spill()
	}
	return nil
}

func (s *runSorter) sortBuf() {
	slices.SortFunc(s.buf, func(a, b pair) int { return strings.Compare(a.k, b.k) })
}

func (s *runSorter) spill() error {
	s.sortBuf()
	f, err := os.CreateTemp(s.dir, "sluice-export-*.run")
	if err != nil {
		return fmt.Errorf("export: spill: %w", err)
	}
	// Unlinked at once: the run lives as long as the descriptor, and a
	// crash leaves nothing behind (on Unix; elsewhere close removes it).
	s.runs = append(s.runs, f)
	if os.Remove(f.Name()) != nil {
		s.names = append(s.names, f.Name())
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var hdr [2 * binary.MaxVarintLen64]byte
	for _, p := range s.buf {
		n := binary.PutUvarint(hdr[:], uint64(len(p.k)))
		n += binary.PutUvarint(hdr[n:], uint64(len(p.v)))
		_, _ = w.Write(hdr[:n])
		_, _ = w.WriteString(p.k)
		_, _ = w.WriteString(p.v)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export: spill: %w", err)
	}
	clear(s.buf)
	s.buf, s.size = s.buf[:0], 0
	return nil
}

// each calls fn for every pair in key order, once per key.
func (s *runSorter) each(fn func(k, v string) error) error {
	if len(s.runs) == 0 {
		s.sortBuf()
		last := ""
		for i, p := range s.buf {
			if i > 0 && p.k == last {
				continue
			}
			last = p.k
			if err := fn(p.k, p.v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(s.buf) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	h := make(runHeap, 0, len(s.runs))
	for _, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("export: merge: %w", err)
		}
		c := &runCursor{r: bufio.NewReaderSize(f, 64<<10)}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	last, first := "", true
	for len(h) > 0 {
		c := h[0]
		if first || c.k != last {
			if err := fn(c.k, c.v); err != nil {
				return err
			}
			last, first = c.k, false
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}

func (s *runSorter) close() {
	for _, f := range s.runs {
		_ = f.Close()
	}
	for _, n := range s.names {
		_ = os.Remove(n)
	}
	s.runs, s.names, s.buf = nil, nil, nil
}

type runCursor struct {
	r    *bufio.Reader
	k, v string
	tmp  []byte
}

func (c *runCursor) next() (bool, error) {
	kl, err := binary.ReadUvarint(c.r)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("export: read run: %w", err)
	}
	vl, err := binary.ReadUvarint(c.r)
	if err != nil {
		return false, fmt.Errorf("export: read run: %w", err)
	}
	if n := int(kl + vl); cap(c.tmp) < n {
		c.tmp = make([]byte, n)
	}
	b := c.tmp[:kl+vl]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return false, fmt.Errorf("export: read run: %w", err)
	}
	c.k, c.v = string(b[:kl]), string(b[kl:])
	return true, nil
}

type runHeap []*runCursor

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].k < h[j].k }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runCursor)) }
func (h *runHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
