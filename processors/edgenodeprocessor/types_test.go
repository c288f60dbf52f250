package edgenodeprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
)

// Every metric type is guarded, series by series; a metric name that never had an admitted
// series is reported as _untracked so it cannot grow the Collector's own telemetry.
func TestEveryMetricTypeIsGuarded(t *testing.T) {
	cfg := testConfig()
	cfg.Guard.MaxSeriesPerNode = 5
	cfg.Guard.MaxSeriesPerMetric = 0
	h := newHarness(t, cfg, edgeFleet(1)...)

	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.node.name", "edge-0000")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	label := func(attrs pcommon.Map, i int) { attrs.PutInt("i", int64(i)) }
	sum := ms.AppendEmpty()
	sum.SetName("sum")
	sum.SetEmptySum()
	for i := range 3 {
		label(sum.Sum().DataPoints().AppendEmpty().Attributes(), i)
	}
	hist := ms.AppendEmpty()
	hist.SetName("hist")
	hist.SetEmptyHistogram()
	for i := range 2 {
		label(hist.Histogram().DataPoints().AppendEmpty().Attributes(), i)
	}
	exp := ms.AppendEmpty()
	exp.SetName("exp")
	exp.SetEmptyExponentialHistogram()
	for i := range 2 {
		label(exp.ExponentialHistogram().DataPoints().AppendEmpty().Attributes(), i)
	}
	summary := ms.AppendEmpty()
	summary.SetName("summary")
	summary.SetEmptySummary()
	for i := range 2 {
		label(summary.Summary().DataPoints().AppendEmpty().Attributes(), i)
	}
	empty := ms.AppendEmpty()
	empty.SetName("no_points")
	empty.SetEmptyGauge()

	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))

	out := h.sink.AllMetrics()[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	var names []string
	for _, m := range out.All() {
		names = append(names, m.Name())
	}
	assert.Equal(t, []string{"sum", "hist", "no_points"}, names,
		"emptied metrics are removed; a metric that came without points passes as it came")
	assert.Equal(t, 5, h.sink.DataPointCount())
	node := attribute.String("node", "edge-0000")
	// sum 3 + hist 2 fill the node; exp had no admitted series, nor had summary.
	assert.Equal(t, int64(4), counter(t, h.tel, "otelcol_processor_edgenode_dropped_series", node, attribute.String("metric", untrackedMetric)))
	assert.Zero(t, counter(t, h.tel, "otelcol_processor_edgenode_dropped_series", node, attribute.String("metric", "exp")))
}
