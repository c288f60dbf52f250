package harness

import (
	"math"
)

// pairStore is the sink's exact record of what arrived: for each series, the distinct timestamps
// its samples carried, so delivered (series, timestamp) pairs can be set against edgesim's
// Served. It is laid out for a thousand nodes' outage (6 M series, ~50 timestamps each) on the
// machine that also runs the fleet and the system under test: one map from the series' hash to a
// flat entry, timestamps as 32-bit offsets (4 B a pair), and the pair counts kept by node and
// metric name as they arrive, so Delivered never walks the series.
type pairStore struct {
	stamps  bool  // keep timestamps; off, only series are counted
	base    int64 // ms; a timestamp is kept as its offset from base
	index   map[uint64]uint32
	entries []pairSeries
	names   interned
	nodes   interned
	counts  map[uint64]int64      // node<<32 | name → distinct pairs
	far     map[[2]int64]struct{} // pairs whose timestamp has no 32-bit offset
	dupes   int64                 // pairs that had arrived before
}

// pairSeries is one series: its timestamps' offsets, sorted, and its interned name and node.
type pairSeries struct {
	offsets    []uint32
	name, node uint32
}

// interned numbers distinct strings.
type interned struct {
	ids  map[string]uint32
	strs []string
}

func (in *interned) id(b []byte) uint32 {
	if id, ok := in.ids[string(b)]; ok {
		return id
	}
	if in.ids == nil {
		in.ids = map[string]uint32{}
	}
	id := uint32(len(in.strs))
	s := string(b)
	in.ids[s] = id
	in.strs = append(in.strs, s)
	return id
}

// newPairStore keeps timestamps from base (ms) on for 49 days when stamps is set.
func newPairStore(stamps bool, base int64) *pairStore {
	return &pairStore{stamps: stamps, base: base, index: map[uint64]uint32{}, counts: map[uint64]int64{}}
}

// add records series key (named name, of node) with the timestamps of its samples.
func (p *pairStore) add(key uint64, name, node []byte, stamps []int64) {
	idx, ok := p.index[key]
	if !ok {
		idx = uint32(len(p.entries))
		p.entries = append(p.entries, pairSeries{name: p.names.id(name), node: p.nodes.id(node)})
		p.index[key] = idx
	}
	if !p.stamps || len(stamps) == 0 {
		return
	}
	e := &p.entries[idx]
	added := int64(0)
	for _, ts := range stamps {
		if p.insert(e, key, ts) {
			added++
		} else {
			p.dupes++
		}
	}
	p.counts[uint64(e.node)<<32|uint64(e.name)] += added
}

// insert adds ts to e and reports whether it is new. Timestamps mostly arrive in order, so this is
// an append; a backlog arriving after newer samples is inserted in place.
func (p *pairStore) insert(e *pairSeries, key uint64, ts int64) bool {
	off := ts - p.base
	if off < 0 || off > math.MaxUint32 {
		if p.far == nil {
			p.far = map[[2]int64]struct{}{}
		}
		k := [2]int64{int64(key), ts}
		if _, ok := p.far[k]; ok {
			return false
		}
		p.far[k] = struct{}{}
		return true
	}
	var added bool
	e.offsets, added = insertSorted(e.offsets, uint32(off))
	return added
}

// delivered sums the distinct pairs of the series whose name count accepts, in total and by node.
func (p *pairStore) delivered(count func(name string) bool) (total int64, byNode map[string]int64) {
	byNode = map[string]int64{}
	for k, n := range p.counts {
		if !count(p.names.strs[uint32(k)]) {
			continue
		}
		byNode[p.nodes.strs[uint32(k>>32)]] += n
		total += n
	}
	return total, byNode
}
