package scrapeconv

import (
	"fmt"
	"hash/maphash"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func (c *Converter) startFresh() {
	c.oldLen.series, c.oldLen.groups, c.oldLen.exts = len(c.seriesAt), len(c.groups), len(c.exts)
	c.oldLen.syms = len(c.syms.strs)
	c.freshFamilies = c.freshFamilies[:0]
	c.freshMeta = c.freshMeta[:0]
	c.metaSeen = 0
}

// forgetFresh takes out of the cache what a failed scrape added to it. New series, groups and
// exts and symbols were appended, so truncating takes them out. (Walking the map rather than keeping the new
// keys: the list would keep its capacity, 8 bytes per series, after the first scrape.)
func (c *Converter) forgetFresh() {
	if len(c.seriesAt) > c.oldLen.series {
		for k, i := range c.series {
			if int(i) >= c.oldLen.series {
				delete(c.series, k)
			}
		}
	}
	clear(c.seriesAt[c.oldLen.series:])
	c.seriesAt = c.seriesAt[:c.oldLen.series]
	clear(c.groups[c.oldLen.groups:])
	c.groups = c.groups[:c.oldLen.groups]
	c.points = c.points[:c.oldLen.groups]
	clear(c.exts[c.oldLen.exts:])
	c.exts = c.exts[:c.oldLen.exts]
	clear(c.syms.strs[c.oldLen.syms:])
	c.syms.strs = c.syms.strs[:c.oldLen.syms]
	for _, k := range c.freshFamilies {
		delete(c.families, k)
	}
	for _, name := range c.freshMeta {
		delete(c.meta, name)
	}
	c.startFresh()
}

// dropIndexes frees what only new series need.
func (c *Converter) dropIndexes() {
	c.byLabels, c.points = nil, nil
	c.syms.dropIndexes()
}

// reset forgets every cached series after a type change. Series of the last scrape get no
// staleness marker: those still exposed continue under their new type.
func (c *Converter) reset() {
	c.typeChanged = false
	clear(c.series)
	c.seriesAt, c.groups, c.exts, c.cums = c.seriesAt[:0], c.groups[:0], c.exts[:0], c.cums[:0]
	clear(c.families)
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
	i, ok := c.series[key]
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
	if om && g.fam.cumulative() {
		if x := c.extOf(g); x.created == 0 {
			x.created = p.StartTimestamp()
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
	st.PostRelabel++
	if c.opts.SampleLimit > 0 && st.PostRelabel > c.opts.SampleLimit {
		return nil, fmt.Errorf("%w: more than %d samples", ErrSampleLimit, c.opts.SampleLimit)
	}
	ts := scrapeMs
	if c.opts.HonorTimestamps && tsp != nil {
		ts = *tsp
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
		x.buckets = append(x.buckets, bucket{s.bound, v})
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
		x := &c.exts[g.ext-1]
		x.hasSum, x.hasCount = false, false
		x.buckets = x.buckets[:0]
		x.created = 0
	}
	f := g.fam
	if f.gen != c.gen {
		f.gen = c.gen
		f.groups = f.groups[:0]
		c.order = append(c.order, f)
	}
	f.groups = append(f.groups, i)
}

// newSeries works out, once per series, its final labels, family, role and group.
func (c *Converter) newSeries(p textparse.Parser, raw []byte, key uint64) (uint32, error) {
	s := series{g: noGroup, kind: kindDrop}
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
	c.series[key] = i
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
		s.bound = b
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
	return c.lb.Labels()
}

func (c *Converter) groupKey(f *family, attrs string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	h.WriteByte(0xff)
	h.WriteString(string(f.typ))
	h.WriteByte(0xff)
	h.WriteString(attrs)
	return h.Sum64()
}

// groupFor returns the index of the group of f and attrs, made if new.
func (c *Converter) groupFor(f *family, attrs string) uint32 {
	if c.byLabels == nil {
		c.byLabels = make(map[uint64][]uint32, len(c.groups))
		for i := range c.groups {
			k := c.groupKey(c.groups[i].fam, c.groups[i].attrs)
			c.byLabels[k] = append(c.byLabels[k], uint32(i))
		}
	}
	key := c.groupKey(f, attrs)
	chain := c.byLabels[key]
	for _, i := range chain {
		if g := &c.groups[i]; g.fam == f && g.attrs == attrs {
			return i
		}
	}
	i := uint32(len(c.groups))
	c.groups = append(c.groups, group{fam: f, attrs: attrs})
	c.points = append(c.points, point{})
	c.byLabels[key] = append(chain, i)
	return i
}

// evict forgets series, groups and families not in this scrape: a series that comes back is
// new again. Slices are compacted only when something went, which steady scrapes don't do.
func (c *Converter) evict() {
	for k, f := range c.families {
		if f.gen != c.gen {
			delete(c.families, k)
		}
	}
	remap := c.evictGroups()
	gone := false
	for k, i := range c.series {
		if c.seriesAt[i].gen != c.gen {
			delete(c.series, k)
			gone = true
		}
	}
	if !gone && remap == nil {
		return
	}
	newIdx := make([]uint32, len(c.seriesAt))
	kept := c.seriesAt[:0]
	for i := range c.seriesAt {
		s := c.seriesAt[i]
		if s.gen != c.gen {
			continue
		}
		if s.g != noGroup && remap != nil {
			s.g = remap[s.g]
		}
		newIdx[i] = uint32(len(kept))
		kept = append(kept, s)
	}
	clear(c.seriesAt[len(kept):])
	c.seriesAt = kept
	if gone {
		for k, i := range c.series {
			c.series[k] = newIdx[i]
		}
	}
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
	sets := make([]string, len(c.groups))
	for i := range c.groups {
		sets[i] = c.groups[i].attrs
	}
	for i, s := range c.syms.compact(sets) {
		c.groups[i].attrs = s
	}
}
