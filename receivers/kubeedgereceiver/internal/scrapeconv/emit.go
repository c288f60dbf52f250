package scrapeconv

import (
	"math"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func (f *family) cumulative() bool { return f.monotonic }

// emit writes this scrape's families, then staleness markers for what vanished.
func (c *Converter) emit(scrapeMs int64, dest pmetric.MetricSlice, st *Stats) {
	dest.EnsureCapacity(dest.Len() + len(c.order))
	for _, f := range c.order {
		for _, i := range f.groups {
			g := &c.groups[i]
			if c.empty(g) {
				continue
			}
			if f.metricGen != c.gen {
				reserve(c.metricFor(f, dest), len(f.groups))
			}
			c.write(g, c.metricFor(f, dest), false, c.points[i])
		}
	}
	for i := range c.groups {
		g := &c.groups[i]
		live := g.gen == c.gen && !c.empty(g)
		if g.flags&written != 0 && !live {
			c.write(g, c.metricFor(c.fams[g.fam], dest), true, point{ts: scrapeMs})
			st.Stale++
		}
		if live {
			g.flags |= written
		} else {
			g.flags &^= written
		}
	}
}

// metricFor is f's metric in this scrape's output, created on first use.
func (c *Converter) metricFor(f *family, dest pmetric.MetricSlice) pmetric.Metric {
	if f.metricGen != c.gen {
		f.metricGen = c.gen
		f.metric = newMetric(dest, f)
	}
	return f.metric
}

// Stale appends staleness markers for every series of the last successful scrape, for a target
// that went away, and forgets them.
func (c *Converter) Stale(scrapeMs int64, dest pmetric.MetricSlice) int {
	c.gen++
	n := 0
	for i := range c.groups {
		g := &c.groups[i]
		if g.flags&written == 0 {
			continue
		}
		c.write(g, c.metricFor(c.fams[g.fam], dest), true, point{ts: scrapeMs})
		g.flags &^= written
		n++
	}
	c.release()
	return n
}

// release drops the families' handles on this scrape's output, which belongs to the consumer
// now: holding them would keep a whole scrape's data points alive until the next one.
func (c *Converter) release() {
	for _, f := range c.families {
		f.metric = pmetric.Metric{}
	}
}

func newMetric(dest pmetric.MetricSlice, f *family) pmetric.Metric {
	m := dest.AppendEmpty()
	m.SetName(f.name)
	m.SetDescription(f.help)
	m.SetUnit(f.unit)
	m.Metadata().PutStr(MetadataTypeKey, string(f.typ))
	switch f.mtype {
	case pmetric.MetricTypeSum:
		s := m.SetEmptySum()
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		s.SetIsMonotonic(f.monotonic)
	case pmetric.MetricTypeHistogram:
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case pmetric.MetricTypeSummary:
		m.SetEmptySummary()
	default:
		m.SetEmptyGauge()
	}
	return m
}

// reserve sizes a new metric's point slice for n points.
func reserve(m pmetric.Metric, n int) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		m.Gauge().DataPoints().EnsureCapacity(n)
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().EnsureCapacity(n)
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().EnsureCapacity(n)
	case pmetric.MetricTypeSummary:
		m.Summary().DataPoints().EnsureCapacity(n)
	}
}

var noRecordedValue = pmetric.DefaultDataPointFlags.WithNoRecordedValue(true)

// extView is g's ext, or an empty one.
func (c *Converter) extView(g *group) *ext {
	if g.ext == 0 {
		return &ext{}
	}
	return &c.exts[g.ext-1]
}

// empty: the group had samples (say, only _created) but nothing to report.
func (c *Converter) empty(g *group) bool {
	switch c.fams[g.fam].mtype {
	case pmetric.MetricTypeHistogram:
		x := c.extView(g)
		return !x.hasCount && len(x.buckets) == 0
	case pmetric.MetricTypeSummary:
		x := c.extView(g)
		return !x.hasCount && !x.hasSum && len(x.buckets) == 0
	default:
		return g.flags&hasValue == 0
	}
}

// ResourceAttributes writes the target labels as resource attributes: job and instance as
// service.name and service.instance.id (the Collector's Prometheus compatibility rules), the
// others under their label names, which exporters turn back into the same labels
// (resource_constant_labels in contrib's and edgetel's Prometheus exporters).
func ResourceAttributes(targetLabels labels.Labels, dst pcommon.Map) {
	dst.EnsureCapacity(dst.Len() + targetLabels.Len())
	targetLabels.Range(func(l labels.Label) {
		switch l.Name {
		case model.JobLabel:
			dst.PutStr(ServiceName, l.Value)
		case model.InstanceLabel:
			dst.PutStr(ServiceInstanceID, l.Value)
		default:
			dst.PutStr(l.Name, l.Value)
		}
	})
}

// The resource attributes job and instance become.
const (
	ServiceName       = "service.name"
	ServiceInstanceID = "service.instance.id"
)

// putAttrs writes the group's attributes. The strings are shared with the symbol table, not
// copied.
func (c *Converter) putAttrs(g *group, dst pcommon.Map) {
	pairs := c.syms.at(g.attrs)
	dst.EnsureCapacity(count(pairs))
	for len(pairs) > 0 {
		var n, v string
		n, v, pairs = c.syms.next(pairs)
		dst.PutStr(n, v)
	}
}

// startTime is the created timestamp when the exposition has one, else when this receiver first
// saw the series, moved forward when the value goes down (a counter reset).
func (c *Converter) startTime(g *group, ts int64, cur float64) int64 {
	if g.cum == 0 {
		c.cums = append(c.cums, cumState{start: ts, prev: cur, prevTS: ts})
		g.cum = uint32(len(c.cums))
	}
	cs := &c.cums[g.cum-1]
	switch {
	case g.ext != 0 && c.exts[g.ext-1].created != 0:
		cs.start = c.exts[g.ext-1].created
	case cur < cs.prev:
		cs.start = cs.prevTS
	}
	cs.prev, cs.prevTS = cur, ts
	return cs.start
}

// write appends g's data point at p (for a staleness marker, p holds only the time).
func (c *Converter) write(g *group, m pmetric.Metric, stale bool, p point) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		c.writeNumber(g, m.Gauge().DataPoints().AppendEmpty(), stale, p, false)
	case pmetric.MetricTypeSum:
		c.writeNumber(g, m.Sum().DataPoints().AppendEmpty(), stale, p, m.Sum().IsMonotonic())
	case pmetric.MetricTypeHistogram:
		c.writeHistogram(g, m.Histogram().DataPoints().AppendEmpty(), stale, p.ts)
	case pmetric.MetricTypeSummary:
		c.writeSummary(g, m.Summary().DataPoints().AppendEmpty(), stale, p.ts)
	}
}

func (c *Converter) writeNumber(g *group, dp pmetric.NumberDataPoint, stale bool, p point, cumulative bool) {
	c.putAttrs(g, dp.Attributes())
	dp.SetTimestamp(msToTime(p.ts))
	if stale || value.IsStaleNaN(p.value) {
		dp.SetFlags(noRecordedValue)
		return
	}
	dp.SetDoubleValue(p.value)
	if cumulative {
		dp.SetStartTimestamp(msToTime(c.startTime(g, p.ts, p.value)))
	}
}

// dataPoint is what histogram and summary data points have in common.
type dataPoint interface {
	Attributes() pcommon.Map
	SetTimestamp(pcommon.Timestamp)
	SetFlags(pmetric.DataPointFlags)
}

// writeHead writes a histogram's or summary's attributes and time, and returns its parts; false
// for a staleness marker (asked for, or a StaleNaN count or sum), which has nothing more.
func writeHead[P dataPoint](c *Converter, g *group, dp P, stale bool, ts int64) (*ext, bool) {
	c.putAttrs(g, dp.Attributes())
	dp.SetTimestamp(msToTime(ts))
	x := c.extView(g)
	if stale || value.IsStaleNaN(x.count) || value.IsStaleNaN(x.sum) {
		dp.SetFlags(noRecordedValue)
		return x, false
	}
	return x, true
}

func (c *Converter) writeHistogram(g *group, dp pmetric.HistogramDataPoint, stale bool, ts int64) {
	x, ok := writeHead(c, g, dp, stale, ts)
	if !ok {
		return
	}
	sortBuckets(x.buckets)
	count := x.count
	if !x.hasCount && len(x.buckets) > 0 {
		count = x.buckets[len(x.buckets)-1].value
	}
	dp.SetCount(uint64(count))
	if x.hasSum {
		dp.SetSum(x.sum)
	}
	n := len(x.buckets)
	if n > 0 && math.IsInf(x.buckets[n-1].bound, 1) {
		n--
	}
	bounds := dp.ExplicitBounds()
	counts := dp.BucketCounts()
	bounds.EnsureCapacity(n)
	counts.EnsureCapacity(n + 1)
	prev := 0.0
	for _, b := range x.buckets[:n] {
		bounds.Append(b.bound)
		counts.Append(uint64(max(b.value-prev, 0)))
		prev = b.value
	}
	if len(x.buckets) > 0 {
		counts.Append(uint64(max(count-prev, 0)))
	}
	dp.SetStartTimestamp(msToTime(c.startTime(g, ts, count)))
}

func (c *Converter) writeSummary(g *group, dp pmetric.SummaryDataPoint, stale bool, ts int64) {
	x, ok := writeHead(c, g, dp, stale, ts)
	if !ok {
		return
	}
	dp.SetCount(uint64(x.count))
	dp.SetSum(x.sum)
	sortBuckets(x.buckets)
	qs := dp.QuantileValues()
	qs.EnsureCapacity(len(x.buckets))
	for _, b := range x.buckets {
		q := qs.AppendEmpty()
		q.SetQuantile(b.bound)
		q.SetValue(b.value)
	}
	dp.SetStartTimestamp(msToTime(c.startTime(g, ts, x.count)))
}

func sortBuckets(b []bucket) {
	// Expositions list buckets in order; sort (insertion) only when they are not.
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && b[j].bound < b[j-1].bound; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

func msToTime(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * 1e6) }
