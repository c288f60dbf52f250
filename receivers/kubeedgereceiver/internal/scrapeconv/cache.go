package scrapeconv

import (
	"fmt"
	"hash/maphash"
	"math"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/flatindex"
)

func (c *Converter) startFresh() {
	c.oldLen.series, c.oldLen.groups, c.oldLen.exts = len(c.seriesAt), len(c.groups), len(c.exts)
	c.oldLen.syms, c.oldLen.arena, c.oldLen.bounds = len(c.syms.strs), len(c.syms.arena), len(c.bounds)
	c.oldLen.fams = len(c.fams)
	c.freshFamilies = c.freshFamilies[:0]
	c.freshMeta = c.freshMeta[:0]
	c.metaSeen = 0
}

// forgetFresh takes out of the cache what a failed scrape added to it. New series, groups,
// exts, symbols and bounds were appended, so truncating takes them out; the index is rebuilt.
func (c *Converter) forgetFresh() {
	if len(c.seriesAt) > c.oldLen.series {
		c.seriesAt = truncate(c.seriesAt, c.oldLen.series)
		flatindex.Rebuild(&c.series, c.seriesAt)
	}
	c.groups = truncate(c.groups, c.oldLen.groups)
	c.points = c.points[:c.oldLen.groups]
	c.exts = truncate(c.exts, c.oldLen.exts)
	c.syms.strs = truncate(c.syms.strs, c.oldLen.syms)
	c.syms.arena = truncate(c.syms.arena, c.oldLen.arena)
	c.fams = truncate(c.fams, c.oldLen.fams)
	c.bounds = truncate(c.bounds, c.oldLen.bounds)
	for _, k := range c.freshFamilies {
		delete(c.families, k)
	}
	for _, name := range c.freshMeta {
		delete(c.meta, name)
	}
	c.startFresh()
}

// truncate cuts s to n elements, zeroing the rest (no references kept), and gives back the
// capacity when it is more than twice what remains: a failed scrape that grew the cache (a
// cardinality bomb past the limits) leaves nothing behind.
func truncate[T any](s []T, n int) []T {
	if cap(s) > 2*n+64 {
		return append([]T(nil), s[:n]...)
	}
	clear(s[n:])
	return s[:n]
}

// dropIndexes frees what only new series need.
func (c *Converter) dropIndexes() {
	c.byLabels, c.points, c.boundIdx = nil, nil, nil
	c.syms.dropIndexes()
}

// reset forgets every cached series after a type change. Series of the last scrape get no
// staleness marker: those still exposed continue under their new type.
func (c *Converter) reset() {
	c.typeChanged = false
	c.series = flatindex.Index{}
	c.seriesAt, c.groups, c.exts, c.cums = c.seriesAt[:0], c.groups[:0], c.exts[:0], c.cums[:0]
	c.bounds = c.bounds[:0]
	clear(c.families)
	clear(c.fams)
	c.fams = c.fams[:0]
	c.dropIndexes()
	c.syms = symbols{}
	clear(c.comments)
}

func (c *Converter) sample(p textparse.Parser, om bool, scrapeMs int64, st *Stats) error {
	raw, tsp, v := p.Series()
	st.Scraped++
	if err := c.checkSeries(st); err != nil {
		return err
	}
	key := maphash.Bytes(c.seed, raw)
	i, ok := flatindex.Find(&c.series, c.seriesAt, key)
	if !ok {
		var err error
		if i, err = c.newSeries(p, raw, key); err != nil {
			return err
		}
	}
	g, err := c.observe(i, tsp, v, scrapeMs, st)
	if g == nil {
		return err
	}
	// An ext only for a series that has a created timestamp: most have none.
	if om && c.fams[g.fam].cumulative() && (g.ext == 0 || c.exts[g.ext-1].created == 0) {
		if ct := p.StartTimestamp(); ct != 0 {
			c.extOf(g).created = ct
		}
	}
	return nil
}

// observe records one sample of a known series in its group, and returns the group (nil for a
// duplicate or dropped series, or on error).
func (c *Converter) observe(i uint32, tsp *int64, v float64, scrapeMs int64, st *Stats) (*group, error) {
	s := &c.seriesAt[i]
	if s.gen == c.gen {
		st.Duplicates++
		return nil, nil
	}
	s.gen = c.gen
	if s.kind == kindDrop {
		return nil, nil
	}
	ts := scrapeMs
	if c.opts.HonorTimestamps && tsp != nil {
		ts = *tsp
		st.NewestTimestamp = max(st.NewestTimestamp, ts)
		if c.opts.MaxFutureSkew > 0 && ts > scrapeMs+c.opts.MaxFutureSkew.Milliseconds() {
			st.ClockSkew++
			return nil, nil
		}
	}
	st.PostRelabel++
	if c.opts.SampleLimit > 0 && st.PostRelabel > c.opts.SampleLimit {
		return nil, fmt.Errorf("%w: more than %d samples", ErrSampleLimit, c.opts.SampleLimit)
	}
	g := &c.groups[s.g]
	if g.gen != c.gen {
		c.touch(g, s.g)
	}
	pt := &c.points[s.g]
	pt.ts = ts
	switch s.kind {
	case kindValue:
		pt.value = v
		g.flags |= hasValue
	case kindBucket, kindQuantile:
		x := c.extOf(g)
		x.buckets = append(x.buckets, bucket{c.bounds[s.bound], v})
	case kindSum:
		x := c.extOf(g)
		x.sum, x.hasSum = v, true
	case kindCount:
		x := c.extOf(g)
		x.count, x.hasCount = v, true
	case kindCreated:
		c.extOf(g).created = int64(v * 1000)
	}
	return g, nil
}

// extOf is g's ext, made on first use.
func (c *Converter) extOf(g *group) *ext {
	if g.ext == 0 {
		c.exts = append(c.exts, ext{})
		g.ext = uint32(len(c.exts))
	}
	return &c.exts[g.ext-1]
}

// touch resets a group for this scrape and lists it, and its family, for output.
func (c *Converter) touch(g *group, i uint32) {
	g.gen = c.gen
	g.flags &^= hasValue
	if g.ext != 0 {
		// All of it: a summary whose _sum line went away must not report the last one.
		x := &c.exts[g.ext-1]
		x.sum, x.count, x.hasSum, x.hasCount = 0, 0, false, false
		x.buckets = x.buckets[:0]
		x.created = 0
	}
	f := c.fams[g.fam]
	if f.gen != c.gen {
		f.gen = c.gen
		f.groups = f.groups[:0]
		c.order = append(c.order, f)
	}
	f.groups = append(f.groups, i)
}

// newSeries works out, once per series, its final labels, family, role and group.
func (c *Converter) newSeries(p textparse.Parser, raw []byte, key uint64) (uint32, error) {
	s := series{key: key, g: noGroup, kind: kindDrop}
	p.Labels(&c.lset)
	c.lb.Reset(c.lset)
	c.opts.TargetLabels.Range(func(l labels.Label) {
		scraped := c.lset.Get(l.Name)
		switch {
		case scraped == "":
			c.lb.Set(l.Name, l.Value)
		case !c.opts.HonorLabels:
			c.lb.Set("exported_"+l.Name, scraped)
			c.lb.Set(l.Name, l.Value)
		}
	})
	if len(c.opts.Relabel) == 0 || relabel.ProcessBuilder(c.lb, c.opts.Relabel...) {
		if err := c.resolveSeries(&s, raw); err != nil {
			return 0, err
		}
	}
	i := uint32(len(c.seriesAt))
	c.seriesAt = append(c.seriesAt, s)
	flatindex.Insert(&c.series, c.seriesAt, i)
	return i, nil
}

// resolveSeries finds the family, role and group of the builder's series (left dropped when it
// has no name).
func (c *Converter) resolveSeries(s *series, raw []byte) error {
	final := c.lb.Labels()
	name := final.Get(model.MetricNameLabel)
	if name == "" {
		return nil
	}
	if err := c.opts.LabelLimits.check(final); err != nil {
		return err
	}
	f, kind := c.resolve(name)
	switch kind {
	case kindBucket, kindQuantile:
		bl := model.BucketLabel
		if kind == kindQuantile {
			bl = model.QuantileLabel
		}
		b, err := strconv.ParseFloat(final.Get(bl), 64)
		if err != nil {
			return fmt.Errorf("%w: series %s: label %s: %w", ErrParse, raw, bl, err)
		}
		s.bound = c.boundRef(b)
	}
	s.kind = kind
	s.g = c.groupFor(f, c.syms.set(c.attrs(f)))
	return nil
}

// attrs are the data point attributes of the builder's series: its labels less the name, the
// resource labels and, for histograms and summaries, the bucket label. (Empty values are absent
// labels in Prometheus; the builder drops them.)
func (c *Converter) attrs(f *family) labels.Labels {
	c.lb.Del(model.MetricNameLabel, model.JobLabel, model.InstanceLabel)
	switch f.mtype {
	case pmetric.MetricTypeHistogram:
		c.lb.Del(model.BucketLabel)
	case pmetric.MetricTypeSummary:
		c.lb.Del(model.QuantileLabel)
	}
	return c.offResource(c.lb.Labels())
}

// offResource is ls less the target labels the resource carries, where the series kept the
// target's value; a target label that relabelling removed is put back empty, to remove the
// resource's.
func (c *Converter) offResource(ls labels.Labels) labels.Labels {
	c.sb.Reset()
	ls.Range(func(l labels.Label) {
		if c.opts.TargetLabels.Get(l.Name) != l.Value {
			c.sb.Add(l.Name, l.Value)
		}
	})
	c.opts.TargetLabels.Range(func(t labels.Label) {
		if !identity(t.Name) && !ls.Has(t.Name) {
			c.sb.Add(t.Name, "")
		}
	})
	c.sb.Sort()
	return c.sb.Labels()
}

// identity: job and instance, which the resource carries as service.name and
// service.instance.id and relabelling cannot change per series here.
func identity(name string) bool { return name == model.JobLabel || name == model.InstanceLabel }

func (c *Converter) groupKey(f *family, attrs uint32) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	h.WriteByte(0xff)
	h.WriteString(string(f.typ))
	h.WriteByte(0xff)
	_, _ = h.Write(c.syms.at(attrs))
	return h.Sum64()
}

// groupFor returns the index of the group of f and attrs, made if new.
func (c *Converter) groupFor(f *family, attrs uint32) uint32 {
	if c.byLabels == nil {
		c.byLabels = make(map[uint64][]uint32, len(c.groups))
		for i := range c.groups {
			k := c.groupKey(c.fams[c.groups[i].fam], c.groups[i].attrs)
			c.byLabels[k] = append(c.byLabels[k], uint32(i))
		}
	}
	key := c.groupKey(f, attrs)
	chain := c.byLabels[key]
	for _, i := range chain {
		if g := &c.groups[i]; g.fam == f.idx && g.attrs == attrs {
			return i
		}
	}
	i := uint32(len(c.groups))
	c.groups = append(c.groups, group{fam: f.idx, attrs: attrs})
	c.points = append(c.points, point{})
	c.byLabels[key] = append(chain, i)
	return i
}

// evict forgets series, groups and families not in this scrape: a series that comes back is
// new again. Slices are compacted only when something went, which steady scrapes don't do.
func (c *Converter) evict() {
	c.evictFamilies()
	remap := c.evictGroups()
	kept := c.seriesAt[:0]
	for _, s := range c.seriesAt {
		if s.gen != c.gen {
			continue
		}
		if s.g != noGroup && remap != nil {
			s.g = remap[s.g]
		}
		kept = append(kept, s)
	}
	if len(kept) == len(c.seriesAt) {
		return
	}
	clear(c.seriesAt[len(kept):])
	c.seriesAt = kept
	flatindex.Rebuild(&c.series, c.seriesAt)
	c.compactBounds()
}

// evictFamilies drops the families not in this scrape and renumbers the rest. A group that
// stays was in this scrape, so its family stays too.
func (c *Converter) evictFamilies() {
	live := 0
	for _, f := range c.fams {
		if f.gen == c.gen {
			live++
		}
	}
	if live == len(c.fams) {
		return
	}
	old := c.fams
	c.fams = make([]*family, 0, live)
	for _, f := range old {
		if f.gen == c.gen {
			f.idx = uint32(len(c.fams))
			c.fams = append(c.fams, f)
		}
	}
	for k, f := range c.families {
		if f.gen != c.gen {
			delete(c.families, k)
		}
	}
	for i := range c.groups {
		if g := &c.groups[i]; g.gen == c.gen {
			g.fam = old[g.fam].idx
		}
	}
}

// boundRef is the index of b in c.bounds, added if new.
func (c *Converter) boundRef(b float64) uint32 {
	if c.boundIdx == nil {
		c.boundIdx = make(map[uint64]uint32, len(c.bounds))
		for i, v := range c.bounds {
			c.boundIdx[math.Float64bits(v)] = uint32(i)
		}
	}
	if i, ok := c.boundIdx[math.Float64bits(b)]; ok {
		return i
	}
	i := uint32(len(c.bounds))
	c.bounds = append(c.bounds, b)
	c.boundIdx[math.Float64bits(b)] = i
	return i
}

// compactBounds keeps the bounds the remaining series use, so that values that change every
// scrape do not pile up.
func (c *Converter) compactBounds() {
	old := c.bounds
	c.bounds, c.boundIdx = nil, nil
	for i := range c.seriesAt {
		if s := &c.seriesAt[i]; s.kind == kindBucket || s.kind == kindQuantile {
			s.bound = c.boundRef(old[s.bound])
		}
	}
	c.boundIdx = nil
}

// evictGroups drops the groups not in this scrape and, when any went, returns where each old
// index moved (noGroup: gone).
func (c *Converter) evictGroups() []uint32 {
	live := 0
	for i := range c.groups {
		if c.groups[i].gen == c.gen {
			live++
		}
	}
	if live == len(c.groups) {
		return nil
	}
	remap := make([]uint32, len(c.groups))
	kept, exts, cums := c.groups[:0], []ext(nil), []cumState(nil)
	for i := range c.groups {
		g := c.groups[i]
		if g.gen != c.gen {
			remap[i] = noGroup
			continue
		}
		if g.ext != 0 {
			exts = append(exts, c.exts[g.ext-1])
			g.ext = uint32(len(exts))
		}
		if g.cum != 0 {
			cums = append(cums, c.cums[g.cum-1])
			g.cum = uint32(len(cums))
		}
		remap[i] = uint32(len(kept))
		kept = append(kept, g)
	}
	clear(c.groups[len(kept):])
	c.groups, c.exts, c.cums = kept, exts, cums
	c.compactSymbols()
	return remap
}

func (c *Converter) compactSymbols() {
	sets := make([]uint32, len(c.groups))
	for i := range c.groups {
		sets[i] = c.groups[i].attrs
	}
	for i, s := range c.syms.compact(sets) {
		c.groups[i].attrs = s
	}
}
