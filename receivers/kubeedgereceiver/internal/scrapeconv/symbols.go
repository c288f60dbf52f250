package scrapeconv

import (
	"encoding/binary"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// symbols stores a target's attribute sets as references into one table of distinct strings: a
// set is uvarint pairs (name, value), kept once in an arena and named by its offset. In a
// cadvisor body a container's id, image, name, pod and namespace values recur in dozens of sets;
// as labels.Labels each set carries its own copy (~300 bytes), as references ~20. A group then
// holds a 4-byte offset and no pointer, so the garbage collector has nothing to scan in the
// groups. Prometheus' dedupelabels build does the same for the whole process, with a table that
// never shrinks; this one is per target and rebuilt from the live sets when series go away.
type symbols struct {
	strs  []string
	arena []byte // each set: its length (uvarint), then its pairs
	// Built when a scrape has new series, dropped after it.
	idx  map[string]uint32
	sets map[string]uint32 // pairs -> offset in arena
	buf  []byte
}

// set returns the offset of ls, one copy shared by every group with those labels.
func (t *symbols) set(ls labels.Labels) uint32 {
	t.index()
	t.buf = t.buf[:0]
	ls.Range(func(l labels.Label) {
		t.buf = binary.AppendUvarint(t.buf, uint64(t.ref(l.Name)))
		t.buf = binary.AppendUvarint(t.buf, uint64(t.ref(l.Value)))
	})
	if off, ok := t.sets[string(t.buf)]; ok {
		return off
	}
	off := uint32(len(t.arena))
	t.arena = binary.AppendUvarint(t.arena, uint64(len(t.buf)))
	t.arena = append(t.arena, t.buf...)
	t.sets[string(t.buf)] = off
	return off
}

func (t *symbols) index() {
	if t.idx != nil {
		return
	}
	t.idx = make(map[string]uint32, len(t.strs))
	for i, s := range t.strs {
		t.idx[s] = uint32(i)
	}
	t.sets = map[string]uint32{}
	for off := 0; off < len(t.arena); {
		n, w := binary.Uvarint(t.arena[off:])
		t.sets[string(t.arena[off+w:off+w+int(n)])] = uint32(off)
		off += w + int(n)
	}
}

func (t *symbols) ref(s string) uint32 {
	if i, ok := t.idx[s]; ok {
		return i
	}
	// A label's strings point into its whole label set's string: a copy keeps only them alive.
	s = strings.Clone(s)
	i := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	t.idx[s] = i
	return i
}

func (t *symbols) dropIndexes() { t.idx, t.sets = nil, nil }

// at is the pairs of the set at off. They alias the arena: use them before the next set call.
func (t *symbols) at(off uint32) []byte {
	n, w := binary.Uvarint(t.arena[off:])
	start := int(off) + w
	return t.arena[start : start+int(n)]
}

// next reads the first pair of pairs, and returns the rest.
func (t *symbols) next(pairs []byte) (name, value string, rest []byte) {
	n, w := binary.Uvarint(pairs)
	v, w2 := binary.Uvarint(pairs[w:])
	return t.strs[n], t.strs[v], pairs[w+w2:]
}

// count is the number of labels in pairs.
func count(pairs []byte) int {
	n := 0
	for _, b := range pairs {
		if b < 0x80 {
			n++
		}
	}
	return n / 2
}

// labels decodes the set at off (tests, compaction).
func (t *symbols) labels(off uint32) labels.Labels {
	pairs := t.at(off)
	b := labels.NewScratchBuilder(count(pairs))
	for len(pairs) > 0 {
		var n, v string
		n, v, pairs = t.next(pairs)
		b.Add(n, v)
	}
	return b.Labels()
}

// compact rebuilds the table from the sets still in use, so that strings and sets of series gone
// do not pile up, and returns their new offsets in the same order.
func (t *symbols) compact(sets []uint32) []uint32 {
	old := symbols{strs: t.strs, arena: t.arena}
	*t = symbols{buf: t.buf}
	memo := map[uint32]uint32{}
	out := make([]uint32, len(sets))
	for i, off := range sets {
		n, ok := memo[off]
		if !ok {
			n = t.set(old.labels(off))
			memo[off] = n
		}
		out[i] = n
	}
	t.dropIndexes()
	return out
}
