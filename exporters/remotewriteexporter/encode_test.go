package remotewriteexporter

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/sampleconv"
)

// testMetrics builds one batch of every kind the kubeedge receiver produces, with resource
// attributes as the Prometheus receiver sets them.
func testMetrics(tsMs int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubelet")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts := pcommon.Timestamp(tsMs * 1e6)

	g := ms.AppendEmpty()
	g.SetName("node_memory_working_set_bytes")
	dp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetDoubleValue(1.5e9)

	c := ms.AppendEmpty()
	c.SetName("kubelet_http_requests_total")
	s := c.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp = s.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.SetIntValue(42)
	dp.Attributes().PutStr("method", "GET")
	dp = s.DataPoints().AppendEmpty()
	dp.SetTimestamp(ts)
	dp.Attributes().PutStr("method", "POST")
	dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))

	h := ms.AppendEmpty()
	h.SetName("kubelet_pod_start_duration_seconds")
	hh := h.SetEmptyHistogram()
	hh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := hh.DataPoints().AppendEmpty()
	hdp.SetTimestamp(ts)
	hdp.ExplicitBounds().FromRaw([]float64{0.5, 1})
	hdp.BucketCounts().FromRaw([]uint64{3, 2, 1})
	hdp.SetCount(6)
	hdp.SetSum(4.25)

	sm := ms.AppendEmpty()
	sm.SetName("go_gc_duration_seconds")
	sdp := sm.SetEmptySummary().DataPoints().AppendEmpty()
	sdp.SetTimestamp(ts)
	q := sdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.001)
	sdp.SetSum(0.5)
	sdp.SetCount(100)
	return md
}

// wantSeries is what testMetrics must turn into, external label cluster=c1 included.
func wantSeries(tsMs int64) map[string]float64 {
	stale := math.Float64frombits(value.StaleNaN)
	base := `cluster="c1",instance="edge-1:10350",job="kubelet"`
	return map[string]float64{
		`node_memory_working_set_bytes{` + base + `}`:                       1.5e9,
		`kubelet_http_requests_total{` + base + `,method="GET"}`:            42,
		`kubelet_http_requests_total{` + base + `,method="POST"}`:           stale,
		`kubelet_pod_start_duration_seconds_bucket{` + base + `,le="0.5"}`:  3,
		`kubelet_pod_start_duration_seconds_bucket{` + base + `,le="1"}`:    5,
		`kubelet_pod_start_duration_seconds_bucket{` + base + `,le="+Inf"}`: 6,
		`kubelet_pod_start_duration_seconds_sum{` + base + `}`:              4.25,
		`kubelet_pod_start_duration_seconds_count{` + base + `}`:            6,
		`go_gc_duration_seconds{` + base + `,quantile="0.5"}`:               0.001,
		`go_gc_duration_seconds_sum{` + base + `}`:                          0.5,
		`go_gc_duration_seconds_count{` + base + `}`:                        100,
	}
}

// seriesKey renders name{labels} with labels sorted, __name__ excluded.
func seriesKey(ls []prompb.Label) string {
	var name string
	var parts []string
	for _, l := range ls {
		if l.Name == "__name__" {
			name = l.Value
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

func encodeBatch(t testing.TB, e *encoder, md pmetric.Metrics) ([]uint32, [][]byte) {
	t.Helper()
	_, err := sampleconv.New(sampleconv.Options{}).Convert(md, e)
	require.NoError(t, err)
	metas, payloads := e.finish()
	var tags []uint32
	var out [][]byte
	for i, m := range metas {
		raw, err := snappy.Decode(nil, payloads[i])
		require.NoError(t, err)
		tags = append(tags, m.Tag)
		out = append(out, raw)
	}
	return tags, out
}

func TestEncodeV1MatchesPrompb(t *testing.T) {
	const ts = 1_700_000_000_123
	e := newEncoder(3, false, map[string]string{"cluster": "c1", "job": "ignored"}, 1000, 1<<20)
	tags, raws := encodeBatch(t, e, testMetrics(ts))
	got := map[string]float64{}
	shardOf := map[string]uint32{}
	for i, raw := range raws {
		var req prompb.WriteRequest
		require.NoError(t, req.Unmarshal(raw))
		// Byte for byte what gogo writes for the same message.
		again, err := req.Marshal()
		require.NoError(t, err)
		require.Equal(t, again, raw)
		for _, s := range req.Timeseries {
			require.Len(t, s.Samples, 1)
			assert.Equal(t, int64(ts), s.Samples[0].Timestamp)
			k := seriesKey(s.Labels)
			got[k] = s.Samples[0].Value
			shardOf[k] = tags[i]
		}
	}
	want := wantSeries(ts)
	require.Len(t, got, len(want))
	for k, v := range want {
		require.Contains(t, got, k)
		if math.IsNaN(v) {
			assert.True(t, value.IsStaleNaN(got[k]), "%s must be a stale marker", k)
		} else {
			assert.Equal(t, v, got[k], k)
		}
	}
	// Encoding again puts every series on the same shard.
	tags2, raws2 := encodeBatch(t, e, testMetrics(ts+1000))
	for i, raw := range raws2 {
		var req prompb.WriteRequest
		require.NoError(t, req.Unmarshal(raw))
		for _, s := range req.Timeseries {
			assert.Equal(t, shardOf[seriesKey(s.Labels)], tags2[i])
		}
	}
}

// Records concatenate into one valid request: that is how the sender batches a backlog.
func TestEncodeV1RecordsConcatenate(t *testing.T) {
	e := newEncoder(1, false, nil, 4, 1<<20) // at most 4 samples per record
	_, raws := encodeBatch(t, e, testMetrics(1000))
	require.Len(t, raws, 3, "11 samples in records of at most 4")
	var all []byte
	for _, r := range raws {
		all = append(all, r...)
	}
	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(all))
	assert.Len(t, req.Timeseries, 11)
}

func TestEncodeV2(t *testing.T) {
	const ts = 1_700_000_000_000
	e := newEncoder(2, true, map[string]string{"cluster": "c1"}, 1000, 1<<20)
	_, raws := encodeBatch(t, e, testMetrics(ts))
	got := map[string]float64{}
	for _, raw := range raws {
		var req writev2.Request
		require.NoError(t, req.Unmarshal(raw))
		for _, s := range req.Timeseries {
			var ls []prompb.Label
			for i := 0; i < len(s.LabelsRefs); i += 2 {
				ls = append(ls, prompb.Label{Name: req.Symbols[s.LabelsRefs[i]], Value: req.Symbols[s.LabelsRefs[i+1]]})
			}
			require.Len(t, s.Samples, 1)
			assert.Equal(t, int64(ts), s.Samples[0].Timestamp)
			got[seriesKey(ls)] = s.Samples[0].Value
		}
	}
	want := wantSeries(ts)
	require.Len(t, got, len(want))
	for k, v := range want {
		if !math.IsNaN(v) {
			assert.Equal(t, v, got[k], k)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	md := bigMetrics(200, 1_700_000_000_000)
	for _, v2 := range []bool{false, true} {
		b.Run(fmt.Sprintf("v2=%v", v2), func(b *testing.B) {
			e := newEncoder(4, v2, map[string]string{"cluster": "c1"}, 5000, 4<<20)
			conv := sampleconv.New(sampleconv.Options{})
			samples := 0
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				st, err := conv.Convert(md, e)
				require.NoError(b, err)
				e.finish()
				samples += st.Samples
			}
			b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(samples)/float64(b.N), "samples/op")
			b.ReportMetric(float64(testing.AllocsPerRun(5, func() {
				_, _ = conv.Convert(md, e)
				e.finish()
			}))/float64(samples/b.N), "allocs/sample")
		})
	}
}

// BenchmarkRetainedPerSeries reports the heap the exporter's conversion keeps per distinct
// series it has seen: the growth of the heap between 10 and 30 batches of new series, so that
// the encoder's reused buffers do not count. It keeps nothing per series by design (names,
// label names and bucket bounds are cached per value; RW 2.0 interns label strings, up to
// internLimit of them).
func BenchmarkRetainedPerSeries(b *testing.B) {
	for _, v2 := range []bool{false, true} {
		b.Run(fmt.Sprintf("v2=%v", v2), func(b *testing.B) {
			for b.Loop() {
				e := newEncoder(4, v2, nil, 5000, 4<<20)
				conv := sampleconv.New(sampleconv.Options{})
				var at10, at30 runtime.MemStats
				series := 0
				for batch := range 30 {
					if batch == 10 {
						runtime.GC()
						runtime.ReadMemStats(&at10)
						series = 0
					}
					md := bigMetrics(200, 1_700_000_000_000)
					renamePods(md, batch)
					st, err := conv.Convert(md, e)
					require.NoError(b, err)
					e.finish()
					series += st.Samples
				}
				runtime.GC()
				runtime.ReadMemStats(&at30)
				b.ReportMetric((float64(at30.HeapAlloc)-float64(at10.HeapAlloc))/float64(series), "B/series")
				runtime.KeepAlive(e)
				runtime.KeepAlive(conv)
			}
		})
	}
}

// renamePods gives every data point of md a pod of batch's own, so that each batch is new series.
func renamePods(md pmetric.Metrics, batch int) {
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	rename := func(attrs pcommon.Map) {
		if v, ok := attrs.Get("pod"); ok {
			attrs.PutStr("pod", fmt.Sprintf("%s-%d", v.Str(), batch))
		}
	}
	for i := range ms.Len() {
		m := ms.At(i)
		switch m.Type() {
		case pmetric.MetricTypeGauge:
			for j := range m.Gauge().DataPoints().Len() {
				rename(m.Gauge().DataPoints().At(j).Attributes())
			}
		case pmetric.MetricTypeSum:
			for j := range m.Sum().DataPoints().Len() {
				rename(m.Sum().DataPoints().At(j).Attributes())
			}
		case pmetric.MetricTypeHistogram:
			for j := range m.Histogram().DataPoints().Len() {
				rename(m.Histogram().DataPoints().At(j).Attributes())
			}
		}
	}
}

// bigMetrics is n pods' worth of kubelet-like series: a gauge, a counter and a 10-bucket
// histogram per pod (15 samples each).
func bigMetrics(n int, tsMs int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubelet")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	ts := pcommon.Timestamp(tsMs * 1e6)
	g := ms.AppendEmpty()
	g.SetName("container_memory_working_set_bytes")
	gd := g.SetEmptyGauge().DataPoints()
	c := ms.AppendEmpty()
	c.SetName("container_cpu_usage_seconds_total")
	cs := c.SetEmptySum()
	cs.SetIsMonotonic(true)
	cs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	h := ms.AppendEmpty()
	h.SetName("kubelet_pod_worker_duration_seconds")
	hs := h.SetEmptyHistogram()
	hs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i := 0; i < n; i++ {
		pod := fmt.Sprintf("pod-%04d", i)
		dp := gd.AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(float64(i))
		dp.Attributes().PutStr("namespace", "default")
		dp.Attributes().PutStr("pod", pod)
		dp = cs.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(float64(i) * 2)
		dp.Attributes().PutStr("namespace", "default")
		dp.Attributes().PutStr("pod", pod)
		hd := hs.DataPoints().AppendEmpty()
		hd.SetTimestamp(ts)
		hd.Attributes().PutStr("pod", pod)
		hd.ExplicitBounds().FromRaw([]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5})
		hd.BucketCounts().FromRaw([]uint64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
		hd.SetCount(11)
		hd.SetSum(3)
	}
	return md
}
