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
	byHash map[uint64][]*seriesEntry
	gen    uint32
}

type seriesEntry struct {
	ls   labels.Labels
	ref  storage.SeriesRef
	seen uint32
}

// newSeriesCache returns an empty cache. (External label names never reach it: the converter
// renames them exported_<name>, sampleconv.Options.ExternalLabels.)
func newSeriesCache() *seriesCache {
	return &seriesCache{byHash: map[uint64][]*seriesEntry{}}
}

// get returns the entry for ls, or nil.
func (c *seriesCache) get(ls labels.Labels) *seriesEntry {
	for _, e := range c.byHash[ls.Hash()] {
		if labels.Equal(e.ls, ls) {
			e.seen = c.gen
			return e
		}
	}
	return nil
}

// add interns a copy of ls.
func (c *seriesCache) add(ls labels.Labels) *seriesEntry {
	e := &seriesEntry{ls: ls.Copy(), seen: c.gen}
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
