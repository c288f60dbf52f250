package objstoreexporter

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
)

// scrape is one kubelet endpoint as the kubeedge receiver delivers it: Prometheus names kept,
// the target labels on the endpoint's resource (job/instance as service.name and
// service.instance.id, node, metrics_path and a mapped node label under their names, beside
// k8s.node.name).
type scrape struct {
	file, job, path string
}

var kubeletScrapes = []scrape{
	{captures.Kubelet, "kubelet", "/metrics"},
	{captures.Cadvisor, "cadvisor", "/metrics/cadvisor"},
}

// TestKubeletCapturesKeepTheirNamesAndLabels sends real kubelet captures through the exporter
// and checks that the uploaded block holds every scraped sample under the name and labels it
// was scraped with (le and quantile values formatted as the Collector formats them: "1", where
// Prometheus 3's parser writes "1.0"). Expected samples come from Prometheus' own text parser; the pdata input is
// built with expfmt, as a scraper would. Explicit sample timestamps (cAdvisor's) are replaced
// by the scrape time: honouring them is the receiver's job.
func TestKubeletCapturesKeepTheirNamesAndLabels(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })

	var want []string
	var later []pmetric.Metrics
	for _, sc := range kubeletScrapes {
		data, err := captures.Read(sc.file)
		require.NoError(t, err)
		want = append(want, expectedScrape(t, data, sc, t0)...)
		require.NoError(t, e.push(ctx, scrapeMetrics(t, data, sc, t0)))
		later = append(later, scrapeMetrics(t, data, sc, t0+3*hour+60_000))
	}
	// Scrapes 3h later make tsdb cut the block holding the first ones.
	for _, md := range later {
		require.NoError(t, e.push(ctx, md))
	}
	require.Greater(t, len(want), 4000)

	bkt := openBucket(t, cfg)
	waitBlocks(t, bkt, 1)
	dir, _ := downloadAll(t, bkt)
	assertSameSamples(t, want, readSamples(t, openReadOnly(t, dir), t0, t0+2*hour), "kubelet captures in the bucket")
}

// expectedScrape lists the samples of an exposition as Prometheus would store them, with the
// target labels of sc.
func expectedScrape(t *testing.T, data []byte, sc scrape, ts int64) []string {
	p := textparse.NewPromParser(data, labels.NewSymbolTable(), false)
	var out []string
	for {
		e, err := p.Next()
		if err != nil {
			require.ErrorContains(t, err, "EOF")
			return out
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		var ls labels.Labels
		p.Labels(&ls)
		b := labels.NewBuilder(ls)
		ls.Range(func(l labels.Label) {
			switch {
			case l.Value == "":
				b.Del(l.Name)
			case l.Name == "le" || l.Name == "quantile":
				b.Set(l.Name, collectorFloat(t, l.Value))
			}
		})
		b.Set("job", sc.job)
		b.Set("instance", "edge-1:10350")
		for name, value := range map[string]string{"node": "edge-1", "metrics_path": sc.path, "region": "eu"} {
			if scraped := ls.Get(name); scraped != "" {
				b.Set("exported_"+name, scraped) // honor_labels: false
			}
			b.Set(name, value)
		}
		out = append(out, point{b.Labels().String(), ts, v}.String())
	}
}

// collectorFloat re-formats an le or quantile value the way the Collector's translator does
// ("1"), where Prometheus 3's parser writes OpenMetrics floats ("1.0").
func collectorFloat(t *testing.T, v string) string {
	if v == "+Inf" {
		return v
	}
	f, err := strconv.ParseFloat(v, 64)
	require.NoError(t, err)
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// scrapeMetrics turns an exposition into pdata the way a Prometheus scraper does, the target
// labels on the resource as the kubeedge receiver puts them.
func scrapeMetrics(t testing.TB, data []byte, sc scrape, ts int64) pmetric.Metrics {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(data)))
	require.NoError(t, err)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	for k, v := range map[string]string{"service.name": sc.job, "service.instance.id": "edge-1:10350",
		"k8s.node.name": "edge-1", "node": "edge-1", "metrics_path": sc.path, "region": "eu"} {
		rm.Resource().Attributes().PutStr(k, v)
	}
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	stamp := pcommon.Timestamp(ts * 1e6)
	for _, n := range names {
		addFamily(ms.AppendEmpty(), fams[n], stamp)
	}
	return md
}

func addFamily(m pmetric.Metric, f *dto.MetricFamily, stamp pcommon.Timestamp) {
	m.SetName(f.GetName())
	attrs := func(dst pcommon.Map, ls []*dto.LabelPair) {
		for _, l := range ls {
			name := l.GetName()
			if name == "node" || name == "metrics_path" || name == "region" {
				name = "exported_" + name // as the receiver renames a scraped target label
			}
			dst.PutStr(name, l.GetValue())
		}
	}
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for _, x := range f.GetMetric() {
			dp := s.DataPoints().AppendEmpty()
			dp.SetTimestamp(stamp)
			dp.SetDoubleValue(x.GetCounter().GetValue())
			attrs(dp.Attributes(), x.GetLabel())
		}
	case dto.MetricType_HISTOGRAM:
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for _, x := range f.GetMetric() {
			dp := h.DataPoints().AppendEmpty()
			dp.SetTimestamp(stamp)
			attrs(dp.Attributes(), x.GetLabel())
			hist := x.GetHistogram()
			var prev uint64
			for _, b := range hist.GetBucket() {
				if math.IsInf(b.GetUpperBound(), 1) {
					continue
				}
				dp.ExplicitBounds().Append(b.GetUpperBound())
				dp.BucketCounts().Append(b.GetCumulativeCount() - prev)
				prev = b.GetCumulativeCount()
			}
			dp.BucketCounts().Append(hist.GetSampleCount() - prev)
			dp.SetCount(hist.GetSampleCount())
			dp.SetSum(hist.GetSampleSum())
		}
	case dto.MetricType_SUMMARY:
		s := m.SetEmptySummary()
		for _, x := range f.GetMetric() {
			dp := s.DataPoints().AppendEmpty()
			dp.SetTimestamp(stamp)
			attrs(dp.Attributes(), x.GetLabel())
			for _, q := range x.GetSummary().GetQuantile() {
				qv := dp.QuantileValues().AppendEmpty()
				qv.SetQuantile(q.GetQuantile())
				qv.SetValue(q.GetValue())
			}
			dp.SetCount(x.GetSummary().GetSampleCount())
			dp.SetSum(x.GetSummary().GetSampleSum())
		}
	default: // gauge, untyped
		g := m.SetEmptyGauge()
		for _, x := range f.GetMetric() {
			dp := g.DataPoints().AppendEmpty()
			dp.SetTimestamp(stamp)
			v := x.GetGauge().GetValue()
			if f.GetType() == dto.MetricType_UNTYPED {
				v = x.GetUntyped().GetValue()
			}
			dp.SetDoubleValue(v)
			attrs(dp.Attributes(), x.GetLabel())
		}
	}
}
