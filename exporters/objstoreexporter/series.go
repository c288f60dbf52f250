package objstoreexporter

import (
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/edgetel/edgetel/internal/flatindex"
)

type ulidT = ulid.ULID

// seriesCache interns label sets: a series' labels are copied once and its tsdb ref reused, so
// an append for a known series allocates nothing. tsdb's head keeps the very label set it was
// given, so the copy is shared with the head and the cache's own cost is its entry.
//
// Written over internal/flatindex for memory: a map from hash to a slice of entry pointers took
// ~140 bytes per series on top of the labels (a shard holds millions), this ~50. Entries are keyed
// by the labels' hash; the rare label set whose hash another one holds already is not cached
// (collided), and each of its appends gets its own copy.
type seriesCache struct {
	entries []seriesEntry
	index   flatindex.Index
	gen     uint32
}

type seriesEntry struct {
	ls   labels.Labels
	hash uint64
	ref  storage.SeriesRef
	seen uint32
}

func (e seriesEntry) Key() uint64 { return e.hash }

// newSeriesCache returns an empty cache. (External label names never reach it: the converter
// renames them exported_<name>, sampleconv.Options.ExternalLabels.)
func newSeriesCache() *seriesCache { return &seriesCache{} }

// entry returns the entry for ls, adding a copy of ls when it is new. The pointer is valid until
// the next call. A label set whose hash belongs to another cached one gets an entry of its own
// that is not kept (its ref is not reused).
func (c *seriesCache) entry(ls labels.Labels) *seriesEntry {
	h := ls.Hash()
	if i, ok := flatindex.Find(&c.index, c.entries, h); ok {
		e := &c.entries[i]
		if labels.Equal(e.ls, ls) {
			e.seen = c.gen
			return e
		}
		return &seriesEntry{ls: ls.Copy(), hash: h, seen: c.gen}
	}
	c.entries = append(c.entries, seriesEntry{ls: ls.Copy(), hash: h, seen: c.gen})
	flatindex.Insert(&c.index, c.entries, uint32(len(c.entries)-1))
	return &c.entries[len(c.entries)-1]
}

// sweep forgets series not appended to since the previous sweep; called once per block cut,
// it bounds the cache by the series of the last two block ranges.
func (c *seriesCache) sweep() {
	kept := c.entries[:0]
	for _, e := range c.entries {
		if e.seen == c.gen {
			kept = append(kept, e)
		}
	}
	clear(c.entries[len(kept):]) // no label sets kept alive past their series
	c.entries = kept
	if cap(c.entries) > 2*len(c.entries)+1024 {
		c.entries = append([]seriesEntry(nil), c.entries...)
	}
	flatindex.Rebuild(&c.index, c.entries)
	c.gen++
}

func (c *seriesCache) len() int { return len(c.entries) }
