package scrapeconv

import (
	"encoding/binary"

	"github.com/prometheus/prometheus/model/labels"
)

// symbols stores a target's attribute sets as references into one table of distinct strings: a
// set is a string of uvarint pairs (name, value). In a cadvisor body a container's id, image,
// name, pod and namespace values recur in dozens of sets; as labels.Labels each set carries its
// own copy (~300 bytes), as references ~20. Prometheus' dedupelabels build does the same for the
// whole process, with a table that never shrinks; this one is per target and rebuilt from the
// live sets when series go away.
type symbols struct {
	strs []string
	// Built when a scrape has new series, dropped after it.
	idx  map[string]uint32
	sets map[string]string
	buf  []byte
}

// set returns ls encoded, one copy shared by every group with those labels.
func (t *symbols) set(ls labels.Labels) string {
	if t.idx == nil {
		t.idx = make(map[string]uint32, len(t.strs))
		for i, s := range t.strs {
			t.idx[s] = uint32(i)
		}
		t.sets = map[string]string{}
	}
	t.buf = t.buf[:0]
	ls.Range(func(l labels.Label) {
		t.buf = binary.AppendUvarint(t.buf, uint64(t.ref(l.Name)))
		t.buf = binary.AppendUvarint(t.buf, uint64(t.ref(l.Value)))
	})
	if s, ok := t.sets[string(t.buf)]; ok {
		return s
	}
	s := string(t.buf)
	t.sets[s] = s
	return s
}

func (t *symbols) ref(s string) uint32 {
	if i, ok := t.idx[s]; ok {
		return i
	}
	i := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	t.idx[s] = i
	return i
}

func (t *symbols) dropIndexes() { t.idx, t.sets = nil, nil }

// each calls fn with every label of set, in order.
func (t *symbols) each(set string, fn func(name, value string)) {
	for len(set) > 0 {
		n, w := uvarint(set)
		v, w2 := uvarint(set[w:])
		set = set[w+w2:]
		fn(t.strs[n], t.strs[v])
	}
}

// count is the number of labels in set.
func count(set string) int {
	n := 0
	for i := 0; i < len(set); i++ {
		if set[i] < 0x80 {
			n++
		}
	}
	return n / 2
}

func uvarint(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<(7*i), i + 1
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return x, len(s)
}

// labels decodes set (tests, errors).
func (t *symbols) labels(set string) labels.Labels {
	b := labels.NewScratchBuilder(count(set))
	t.each(set, func(n, v string) { b.Add(n, v) })
	return b.Labels()
}

// compact rebuilds the table from the sets still in use, so that strings of series gone do not
// pile up, and returns their new encodings in the same order.
func (t *symbols) compact(sets []string) []string {
	old := symbols{strs: t.strs}
	*t = symbols{buf: t.buf}
	memo := map[string]string{}
	out := make([]string, len(sets))
	for i, s := range sets {
		n, ok := memo[s]
		if !ok {
			n = t.set(old.labels(s))
			memo[s] = n
		}
		out[i] = n
	}
	t.dropIndexes()
	return out
}
