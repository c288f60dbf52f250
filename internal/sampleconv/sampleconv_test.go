package sampleconv

import (
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

type sample struct {
	ls string
	t  int64
	v  float64
}

type collect struct{ got []sample }

func (c *collect) Append(ls labels.Labels, t int64, v float64) error {
	c.got = append(c.got, sample{ls.String(), t, v})
	return nil
}

const t0 = 1_700_000_000_000 // ms

func newMetrics() (pmetric.Metrics, pmetric.MetricSlice) {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubelet")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
	rm.Resource().Attributes().PutStr("k8s.node.name", "edge-1")
	return md, rm.ScopeMetrics().AppendEmpty().Metrics()
}

func stamp(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * 1e6) }

func TestConvertKinds(t *testing.T) {
	md, ms := newMetrics()

	g := ms.AppendEmpty()
	g.SetName("node_memory_working_set_bytes")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(stamp(t0))
	dp.SetDoubleValue(42.5)

	s := ms.AppendEmpty()
	s.SetName("node_cpu_usage_seconds")
	s.SetEmptySum().SetIsMonotonic(true)
	s.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sp := s.Sum().DataPoints().AppendEmpty()
	sp.SetTimestamp(stamp(t0))
	sp.SetIntValue(7)
	sp.Attributes().PutStr("cpu", "0")

	h := ms.AppendEmpty()
	h.SetName("apiserver_request_duration_seconds")
	h.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.Histogram().DataPoints().AppendEmpty()
	hp.SetTimestamp(stamp(t0))
	hp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	hp.SetCount(6)
	hp.SetSum(9.5)

	sm := ms.AppendEmpty()
	sm.SetName("rpc_latency")
	sq := sm.SetEmptySummary().DataPoints().AppendEmpty()
	sq.SetTimestamp(stamp(t0))
	sq.SetCount(4)
	sq.SetSum(2)
	q := sq.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.25)

	var c collect
	st, err := New(Options{}).Convert(md, &c)
	require.NoError(t, err)
	job := `instance="edge-1:10350", job="kubelet"`
	assert.Equal(t, []sample{
		{`{__name__="node_memory_working_set_bytes", ` + job + `}`, t0, 42.5},
		{`{__name__="node_cpu_usage_seconds_total", cpu="0", ` + job + `}`, t0, 7},
		{`{__name__="apiserver_request_duration_seconds_bucket", ` + job + `, le="0.1"}`, t0, 1},
		{`{__name__="apiserver_request_duration_seconds_bucket", ` + job + `, le="1"}`, t0, 3},
		{`{__name__="apiserver_request_duration_seconds_bucket", ` + job + `, le="+Inf"}`, t0, 6},
		{`{__name__="apiserver_request_duration_seconds_sum", ` + job + `}`, t0, 9.5},
		{`{__name__="apiserver_request_duration_seconds_count", ` + job + `}`, t0, 6},
		{`{__name__="rpc_latency", ` + job + `, quantile="0.5"}`, t0, 0.25},
		{`{__name__="rpc_latency_sum", ` + job + `}`, t0, 2},
		{`{__name__="rpc_latency_count", ` + job + `}`, t0, 4},
	}, c.got)
	assert.Equal(t, Stats{Samples: 10}, st)
}

func TestConvertNamesAndLabels(t *testing.T) {
	md, ms := newMetrics()
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr("service.namespace", "edge")
	m := ms.AppendEmpty()
	m.SetName("http.requests_total") // already _total: not doubled; '.' sanitized
	m.SetEmptySum().SetIsMonotonic(true)
	m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := m.Sum().DataPoints().AppendEmpty()
	dp.SetTimestamp(stamp(t0))
	dp.SetDoubleValue(1)
	dp.Attributes().PutStr("http.method", "GET")
	dp.Attributes().PutStr("http_method", "POST") // collides after sanitizing: joined
	dp.Attributes().PutStr("2xx", "yes")
	dp.Attributes().PutStr("empty", "")
	dp.Attributes().PutStr("instance", "own") // the point's own label wins over the resource

	var c collect
	_, err := New(Options{ResourceToLabels: true}).Convert(md, &c)
	require.NoError(t, err)
	require.Len(t, c.got, 1)
	assert.Equal(t, `{__name__="http_requests_total", http_method="GET;POST", instance="own", job="edge/kubelet", k8s_node_name="edge-1", key_2xx="yes"}`, c.got[0].ls)
}

func TestConvertStaleAndUnsupported(t *testing.T) {
	md, ms := newMetrics()
	h := ms.AppendEmpty()
	h.SetName("lat")
	h.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.Histogram().DataPoints().AppendEmpty()
	hp.SetTimestamp(stamp(t0))
	hp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))

	d := ms.AppendEmpty()
	d.SetName("delta")
	d.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	d.Sum().DataPoints().AppendEmpty().SetIntValue(1)
	e := ms.AppendEmpty()
	e.SetName("exp")
	e.SetEmptyExponentialHistogram().DataPoints().AppendEmpty()

	var c collect
	st, err := New(Options{}).Convert(md, &c)
	require.NoError(t, err)
	assert.Equal(t, Stats{Samples: 2, Unsupported: 2}, st) // +Inf bucket and _count; no sum
	for _, s := range c.got {
		assert.True(t, value.IsStaleNaN(s.v), s.ls)
		assert.Equal(t, int64(t0), s.t)
	}
}

type failing struct{ n int }

func (f *failing) Append(labels.Labels, int64, float64) error {
	f.n++
	return errors.New("disk full")
}

func TestConvertStopsOnAppendError(t *testing.T) {
	md, ms := newMetrics()
	for range 3 {
		m := ms.AppendEmpty()
		m.SetName("g")
		m.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(math.Pi)
	}
	f := &failing{}
	_, err := New(Options{}).Convert(md, f)
	require.EqualError(t, err, "disk full")
	assert.Equal(t, 1, f.n)
}

type discard struct{}

func (discard) Append(labels.Labels, int64, float64) error { return nil }

// BenchmarkConvert reports allocations per Convert of 100 samples (expected: 0 once warm).
func BenchmarkConvert(b *testing.B) {
	md, ms := newMetrics()
	m := ms.AppendEmpty()
	m.SetName("container_cpu_usage_seconds_total")
	m.SetEmptySum().SetIsMonotonic(true)
	m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := range 100 {
		dp := m.Sum().DataPoints().AppendEmpty()
		dp.SetTimestamp(stamp(t0 + int64(i)))
		dp.SetDoubleValue(float64(i))
		dp.Attributes().PutStr("pod", "p")
		dp.Attributes().PutStr("namespace", "kube-system")
	}
	c := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Convert(md, discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "samples/s")
}

// A scraped counter without _total (allowed in the text format) keeps its name with
// WithoutSuffixes, and gets _total without it.
func TestConvertWithoutSuffixes(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "container_memory_failcnt_total"},
		{Options{WithoutSuffixes: true}, "container_memory_failcnt"},
	} {
		md, ms := newMetrics()
		m := ms.AppendEmpty()
		m.SetName("container_memory_failcnt")
		m.SetEmptySum().SetIsMonotonic(true)
		m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		m.Sum().DataPoints().AppendEmpty().SetIntValue(3)
		var c collect
		_, err := New(tc.opts).Convert(md, &c)
		require.NoError(t, err)
		require.Len(t, c.got, 1)
		assert.Contains(t, c.got[0].ls, `__name__="`+tc.want+`"`)
	}
}

func TestFormatFloatLikeTheCollector(t *testing.T) {
	for f, want := range map[float64]string{1: "1", 0.005: "0.005", 1e6: "1000000", 1e-5: "0.00001", math.Inf(1): "+Inf", 2.5: "2.5"} {
		assert.Equal(t, want, FormatFloat(f))
	}
}

func TestOutputConfig(t *testing.T) {
	o := OutputConfig{ExternalLabels: map[string]string{"cluster": "c1", "replica": "a"}}
	assert.NoError(t, o.ValidateExternalLabels())
	ext := []string{"cluster", "replica"}
	assert.Equal(t, Options{WithoutSuffixes: true, ExternalLabels: ext}, o.Options())
	o.AddMetricSuffixes, o.ResourceToTelemetry.Enabled = true, true
	assert.Equal(t, Options{ResourceToLabels: true, ExternalLabels: ext}, o.Options())
	for _, bad := range []map[string]string{{"bad-name": "x"}, {"edge.site": "a"}, {"__name__": "x"}, {"": "x"}, {"cluster": ""}} {
		err := OutputConfig{ExternalLabels: bad}.ValidateExternalLabels()
		assert.ErrorContains(t, err, "external_labels: ", "%v", bad)
	}
}

// The resource attributes resource_constant_labels selects become labels (by default those the
// kubeedge receiver carries its target labels in), no others; a data point's own value wins,
// and its own empty value removes the resource's label.
func TestResourceConstantLabels(t *testing.T) {
	md := pmetric.NewMetrics()
	endpoint := func(attrs ...string) pmetric.MetricSlice {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "kubeedge")
		rm.Resource().Attributes().PutStr("service.instance.id", "edge-1")
		rm.Resource().Attributes().PutStr("k8s.node.name", "edge-1")
		for i := 0; i < len(attrs); i += 2 {
			rm.Resource().Attributes().PutStr(attrs[i], attrs[i+1])
		}
		return rm.ScopeMetrics().AppendEmpty().Metrics()
	}
	gauge := func(ms pmetric.MetricSlice, pairs ...string) {
		dp := ms.AppendEmpty()
		dp.SetName("g")
		p := dp.SetEmptyGauge().DataPoints().AppendEmpty()
		p.SetTimestamp(stamp(t0))
		for i := 0; i < len(pairs); i += 2 {
			p.Attributes().PutStr(pairs[i], pairs[i+1])
		}
	}
	ours := endpoint("node", "edge-1", "metrics_path", "/metrics/cadvisor", "region", "eu", "server.port", "10250")
	gauge(ours, "pod", "p")
	gauge(ours, "node", "elsewhere")
	gauge(ours, "z", "1", "node", "") // unsorted own attributes take the other path
	gauge(endpoint("url.scheme", "http"))
	convert := func(cfg OutputConfig) []string {
		var c collect
		_, err := New(cfg.Options()).Convert(md, &c)
		require.NoError(t, err)
		var got []string
		for _, s := range c.got {
			got = append(got, s.ls)
		}
		return got
	}
	assert.Equal(t, []string{
		`{__name__="g", instance="edge-1", job="kubeedge", metrics_path="/metrics/cadvisor", node="edge-1", pod="p", region="eu"}`,
		`{__name__="g", instance="edge-1", job="kubeedge", metrics_path="/metrics/cadvisor", node="elsewhere", region="eu"}`,
		`{__name__="g", instance="edge-1", job="kubeedge", metrics_path="/metrics/cadvisor", region="eu", z="1"}`,
		`{__name__="g", instance="edge-1", job="kubeedge"}`,
	}, convert(DefaultOutputConfig()))

	globs := DefaultOutputConfig()
	globs.ResourceConstantLabels = ResourceLabelsConfig{Included: []string{"k8s.*", "url.sch?me", "node"}, Excluded: []string{"k8s.pod.*"}}
	got := convert(globs)
	assert.Equal(t, `{__name__="g", instance="edge-1", job="kubeedge", k8s_node_name="edge-1", node="edge-1", pod="p"}`, got[0])
	assert.Equal(t, `{__name__="g", instance="edge-1", job="kubeedge", k8s_node_name="edge-1", url_scheme="http"}`, got[3])

	allBut := OutputConfig{ResourceConstantLabels: ResourceLabelsConfig{Excluded: []string{"service.*", "k8s.node.name", "server.port"}}}
	assert.Equal(t, convert(DefaultOutputConfig())[:3], convert(allBut)[:3], "every attribute but the excluded ones")

	none := OutputConfig{}
	assert.Equal(t, `{__name__="g", instance="edge-1", job="kubeedge", pod="p"}`, convert(none)[0])
}

// A scraped label named like an external label cannot override the writer's identity: it is
// renamed exported_<name> (dropped when that name is taken), in both exporters' conversion.
func TestExternalLabelNamesAreRenamed(t *testing.T) {
	md, ms := newMetrics()
	m := ms.AppendEmpty()
	m.SetName("up")
	g := m.SetEmptyGauge()
	for _, attrs := range []map[string]string{
		{"cluster": "forged", "pod": "p"},
		{"cluster": "forged", "exported_cluster": "own"},
		{"pod": "q"},
	} {
		dp := g.DataPoints().AppendEmpty()
		dp.SetTimestamp(stamp(t0))
		dp.SetDoubleValue(1)
		for k, v := range attrs {
			dp.Attributes().PutStr(k, v)
		}
	}
	var c collect
	_, err := New(OutputConfig{ExternalLabels: map[string]string{"cluster": "c1"}}.Options()).Convert(md, &c)
	require.NoError(t, err)
	var got []string
	for _, s := range c.got {
		got = append(got, s.ls)
	}
	assert.Contains(t, got, `{__name__="up", exported_cluster="forged", instance="edge-1:10350", job="kubelet", pod="p"}`)
	assert.Contains(t, got, `{__name__="up", exported_cluster="own", instance="edge-1:10350", job="kubelet"}`)
	assert.Contains(t, got, `{__name__="up", instance="edge-1:10350", job="kubelet", pod="q"}`)
	for _, ls := range got {
		assert.NotRegexp(t, `[{ ]cluster=`, ls, "a scraped cluster label reached the writer")
	}
}
