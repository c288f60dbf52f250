package edgenodeprocessor

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/guard"
)

// metricDrops tallies one metric's drops within one resource.
type metricDrops struct {
	name   string
	attr   string // the telemetry attribute: name, or untrackedMetric
	series int64
	points int64
}

// limiter runs the guard over one resource's metrics while holding the node's lock.
type limiter struct {
	p     *edgeNodeProcessor
	node  *guard.Node
	now   int64
	drops []metricDrops
	keys  guard.KeyCache
}

// guardResource drops the data points of series over the node's limits and reports whether it
// dropped any. The series identity is taken before enrichment, so a relabelled node does not
// turn its series into new ones.
func (p *edgeNodeProcessor) guardResource(ctx context.Context, now int64, nodeName string, rm pmetric.ResourceMetrics) bool {
	resHash := p.hasher.Attributes(rm.Resource().Attributes())
	l := limiter{p: p, node: p.guard.Lock(nodeName), now: now}
	rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
		scopeHash := p.hasher.Scope(resHash, sm.Scope())
		before := l.pointsDropped()
		sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
			return l.metric(scopeHash, m)
		})
		return l.pointsDropped() > before && sm.Metrics().Len() == 0
	})
	report := len(l.drops) > 0 && l.node.ShouldReport(now, p.cfg.Guard.LogInterval)
	l.node.Unlock()
	if len(l.drops) == 0 {
		return false
	}
	p.tel.recordDrops(ctx, nodeName, l.drops)
	if report {
		p.logDrops(nodeName, l.drops)
	}
	return true
}

// metric filters one metric's data points and reports whether the metric is left empty.
func (l *limiter) metric(scopeHash uint64, m pmetric.Metric) bool {
	mh := l.p.hasher.Metric(scopeHash, m.Name())
	keep := func(attrs pcommon.Map) bool { return l.admit(m.Name(), mh, attrs) }
	before := l.pointsDropped()
	l.node.StartMetric(m.Name())
	defer l.node.EndMetric()
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		m.Gauge().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return !keep(dp.Attributes()) })
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return !keep(dp.Attributes()) })
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().RemoveIf(func(dp pmetric.HistogramDataPoint) bool { return !keep(dp.Attributes()) })
	case pmetric.MetricTypeExponentialHistogram:
		m.ExponentialHistogram().DataPoints().RemoveIf(func(dp pmetric.ExponentialHistogramDataPoint) bool { return !keep(dp.Attributes()) })
	case pmetric.MetricTypeSummary:
		m.Summary().DataPoints().RemoveIf(func(dp pmetric.SummaryDataPoint) bool { return !keep(dp.Attributes()) })
	default:
		return false
	}
	// Only a metric this guard emptied is removed; one that came without points passes as it came.
	return l.pointsDropped() > before && pointCount(m) == 0
}

func (l *limiter) admit(name string, mh uint64, attrs pcommon.Map) bool {
	v := l.node.Admit(l.now, name, l.p.hasher.SeriesCached(mh, attrs, &l.keys))
	if v == guard.Admitted {
		return true
	}
	d := l.tally(name)
	d.points++
	if v == guard.RejectedNew {
		d.series++
	}
	return false
}

// tally finds the metric's entry; a resource rarely has more than a few dropping metrics.
func (l *limiter) tally(name string) *metricDrops {
	for i := range l.drops {
		if l.drops[i].name == name {
			return &l.drops[i]
		}
	}
	attr := untrackedMetric
	if l.node.Tracked(name) {
		attr = name
	}
	l.drops = append(l.drops, metricDrops{name: name, attr: attr})
	return &l.drops[len(l.drops)-1]
}

func (l *limiter) pointsDropped() int64 {
	var n int64
	for _, d := range l.drops {
		n += d.points
	}
	return n
}

func pointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

func (p *edgeNodeProcessor) logDrops(node string, drops []metricDrops) {
	top := drops[0]
	var series, points int64
	for _, d := range drops {
		series += d.series
		points += d.points
		if d.points > top.points {
			top = d
		}
	}
	p.logger.Warn("edge node over its series limit: dropping series",
		zap.String("node", node),
		zap.String("metric", top.name),
		zap.Int("metrics_dropping", len(drops)),
		zap.Int64("dropped_series", series),
		zap.Int64("dropped_data_points", points),
		zap.Int("max_series_per_node", p.cfg.Guard.MaxSeriesPerNode),
		zap.Int("max_series_per_metric", p.cfg.Guard.MaxSeriesPerMetric),
		zap.Duration("next_report_after", p.cfg.Guard.LogInterval))
}
