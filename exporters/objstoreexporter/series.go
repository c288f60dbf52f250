package objstoreexporter

import (
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

type ulidT = ulid.ULID

// seriesCache interns label sets: a series' labels are copied once and its tsdb ref reused, so
// an append for a known series allocates nothing.
type seriesCache struct {
	byHash   map[uint64][]*seriesEntry
	gen      uint32
	external map[string]string
}

type seriesEntry struct {
	key  labels.Labels // the converter's label set, matched on lookup
	ls   labels.Labels // what is stored: key, with external label names renamed
	ref  storage.SeriesRef
	seen uint32
}

// seriesCache also keeps external label names out of the stored series: Thanos attaches the
// external labels at query time, so a series label of the same name is renamed to
// exported_<name>, as Prometheus does with conflicting target labels.
func newSeriesCache(external map[string]string) *seriesCache {
	return &seriesCache{byHash: map[uint64][]*seriesEntry{}, external: external}
}

// get returns the entry for ls, or nil.
func (c *seriesCache) get(ls labels.Labels) *seriesEntry {
	for _, e := range c.byHash[ls.Hash()] {
		if labels.Equal(e.key, ls) {
			e.seen = c.gen
			return e
		}
	}
	return nil
}

// add interns a copy of ls.
func (c *seriesCache) add(ls labels.Labels) *seriesEntry {
	key := ls.Copy()
	e := &seriesEntry{key: key, ls: key, seen: c.gen}
	if c.clashes(ls) {
		b := labels.NewBuilder(ls)
		ls.Range(func(l labels.Label) {
			if _, ok := c.external[l.Name]; ok {
				b.Del(l.Name)
				b.Set("exported_"+l.Name, l.Value)
			}
		})
		e.ls = b.Labels()
	}
	h := ls.Hash()
	c.byHash[h] = append(c.byHash[h], e)
	return e
}

// sweep forgets series not appended to since the previous sweep; called once per block cut,
// it bounds the cache by the series of the last two block ranges.
func (c *seriesCache) sweep() {
	for h, es := range c.byHash {
		kept := es[:0]
		for _, e := range es {
			if e.seen == c.gen {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			delete(c.byHash, h)
		} else {
			c.byHash[h] = kept
		}
	}
	c.gen++
}

func (c *seriesCache) len() int {
	n := 0
	for _, es := range c.byHash {
		n += len(es)
	}
	return n
}

func (c *seriesCache) clashes(ls labels.Labels) bool {
	for name := range c.external {
		if ls.Has(name) {
			return true
		}
	}
	return false
}
