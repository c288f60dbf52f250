package scrapeconv

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
	"github.com/edgetel/edgetel/internal/testing/scrapetest"
)

var targetLabels = labels.FromStrings("job", "kubeedge", "instance", "edge-1", "node", "edge-1", "metrics_path", "/metrics/cadvisor")

func fixtureBytes(name string) ([]byte, error) { return captures.Read(name) }

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fixtureBytes(name)
	require.NoError(t, err)
	return b
}

// convert runs one scrape and wraps the output in a resource the way the receiver does.
func convert(t testing.TB, c *Converter, body []byte, scrapeMs int64) (pmetric.Metrics, Stats) {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ResourceAttributes(c.opts.TargetLabels, rm.Resource().Attributes())
	mt, err := MediaType(body, "text/plain; charset=utf-8")
	require.NoError(t, err)
	st, err := c.Convert(body, mt, scrapeMs, rm.ScopeMetrics().AppendEmpty().Metrics())
	require.NoError(t, err)
	return md, st
}

func TestConvertFixturesRoundTrip(t *testing.T) {
	for _, name := range []string{"metrics-cadvisor-1.35.txt", "metrics-kubelet-1.21.txt", "metrics-resource-1.35.txt"} {
		t.Run(name, func(t *testing.T) {
			body := fixture(t, name)
			c := New(Options{HonorTimestamps: true, TargetLabels: targetLabels})
			md, st := convert(t, c, body, 1_800_000_000_000)
			want, err := scrapetest.FromExposition(body, targetLabels)
			require.NoError(t, err)
			got, err := scrapetest.FromMetrics(md)
			require.NoError(t, err)
			assert.Empty(t, scrapetest.Diff(want, got, 20))
			assert.Equal(t, st.Scraped, st.PostRelabel)
			assert.Zero(t, st.Stale)

			// The same body again, now from the cache: the same series, nothing ended.
			md2, st2 := convert(t, c, body, 1_800_000_015_000)
			assert.Zero(t, st2.Stale)
			assert.Equal(t, md.DataPointCount(), md2.DataPointCount())
			got2, err := scrapetest.FromMetrics(md2)
			require.NoError(t, err)
			assert.Empty(t, scrapetest.Diff(want, got2, 20))
		})
	}
}

func TestConvertTypesAndMetadata(t *testing.T) {
	body := fixture(t, "metrics-kubelet-1.21.txt")
	c := New(Options{HonorTimestamps: true, TargetLabels: targetLabels})
	md, _ := convert(t, c, body, 1_800_000_000_000)
	byName := map[string]pmetric.Metric{}
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		byName[ms.At(i).Name()] = ms.At(i)
	}
	h := byName["apiserver_client_certificate_expiration_seconds"]
	require.Equal(t, pmetric.MetricTypeHistogram, h.Type())
	dp := h.Histogram().DataPoints().At(0)
	assert.Equal(t, uint64(3), dp.Count())
	assert.Equal(t, 14, dp.ExplicitBounds().Len())
	assert.Equal(t, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0}, dp.BucketCounts().AsRaw())
	assert.Contains(t, h.Description(), "remaining lifetime")
	ty, _ := h.Metadata().Get(MetadataTypeKey)
	assert.Equal(t, "histogram", ty.Str())

	c1 := byName["apiserver_audit_event_total"]
	require.Equal(t, pmetric.MetricTypeSum, c1.Type())
	assert.True(t, c1.Sum().IsMonotonic())
	assert.Equal(t, pmetric.AggregationTemporalityCumulative, c1.Sum().AggregationTemporality())
	assert.NotZero(t, c1.Sum().DataPoints().At(0).StartTimestamp())
	attrs := c1.Sum().DataPoints().At(0).Attributes().AsRaw()
	assert.Empty(t, attrs, "the target labels are the resource's")

	var summaries int
	for _, m := range byName {
		if m.Type() == pmetric.MetricTypeSummary {
			summaries++
			assert.Positive(t, m.Summary().DataPoints().At(0).QuantileValues().Len())
		}
	}
	assert.Equal(t, 1, summaries)
}

func TestConvertHonorsTimestamps(t *testing.T) {
	body := []byte("# TYPE a gauge\na 1 1000\nb 2\n")
	for _, honor := range []bool{true, false} {
		c := New(Options{HonorTimestamps: honor})
		md, _ := convert(t, c, body, 5000)
		ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
		want := int64(5000)
		if honor {
			want = 1000
		}
		assert.Equal(t, want*1e6, int64(ms.At(0).Gauge().DataPoints().At(0).Timestamp()))
		assert.Equal(t, int64(5000*1e6), int64(ms.At(1).Gauge().DataPoints().At(0).Timestamp()))
	}
}

func TestConvertCounterStartAndReset(t *testing.T) {
	c := New(Options{})
	start := func(body string, at int64) int64 {
		md, _ := convert(t, c, []byte(body), at)
		return int64(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0).StartTimestamp()) / 1e6
	}
	assert.Equal(t, int64(1000), start("# TYPE x_total counter\nx_total 5\n", 1000))
	assert.Equal(t, int64(1000), start("# TYPE x_total counter\nx_total 7\n", 2000))
	// A reset: the counter restarted somewhere after the previous scrape.
	assert.Equal(t, int64(2000), start("# TYPE x_total counter\nx_total 1\n", 3000))
}

func TestConvertOpenMetricsCreated(t *testing.T) {
	body := []byte("# TYPE req_seconds counter\n# UNIT req_seconds seconds\nreq_seconds_total 3\nreq_seconds_created 1500.5\n# EOF\n")
	mt, err := MediaType(body, "")
	require.NoError(t, err)
	require.Equal(t, MediaOpenMetrics, mt)
	c := New(Options{})
	ms := pmetric.NewMetricSlice()
	_, err = c.Convert(body, mt, 9000, ms)
	require.NoError(t, err)
	require.Equal(t, 1, ms.Len())
	assert.Equal(t, "req_seconds_total", ms.At(0).Name())
	assert.Equal(t, "seconds", ms.At(0).Unit())
	assert.Equal(t, int64(1500500), int64(ms.At(0).Sum().DataPoints().At(0).StartTimestamp())/1e6)
}

func TestConvertStaleness(t *testing.T) {
	c := New(Options{})
	ms := pmetric.NewMetricSlice()
	_, err := c.Convert([]byte("a 1\nb 2\n"), MediaText, 1000, ms)
	require.NoError(t, err)

	// A failed scrape changes nothing: no markers now, none owed later for its sake.
	ms = pmetric.NewMetricSlice()
	_, err = c.Convert([]byte("a 1\nb{ 2\n"), MediaText, 2000, ms)
	require.ErrorIs(t, err, ErrParse)
	assert.Zero(t, ms.Len())

	ms = pmetric.NewMetricSlice()
	st, err := c.Convert([]byte("a 3\n"), MediaText, 3000, ms)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Stale)
	require.Equal(t, 2, ms.Len())
	b := ms.At(1)
	assert.Equal(t, "b", b.Name())
	assert.True(t, b.Gauge().DataPoints().At(0).Flags().NoRecordedValue())
	assert.Equal(t, int64(3000*1e6), int64(b.Gauge().DataPoints().At(0).Timestamp()))

	// The marker is sent once.
	ms = pmetric.NewMetricSlice()
	st, err = c.Convert([]byte("a 4\n"), MediaText, 4000, ms)
	require.NoError(t, err)
	assert.Zero(t, st.Stale)

	// A target that goes away ends all its series.
	ms = pmetric.NewMetricSlice()
	assert.Equal(t, 1, c.Stale(5000, ms))
	assert.True(t, ms.At(0).Gauge().DataPoints().At(0).Flags().NoRecordedValue())
}

func TestConvertSampleLimit(t *testing.T) {
	c := New(Options{SampleLimit: 2})
	ms := pmetric.NewMetricSlice()
	_, err := c.Convert([]byte("a 1\nb 2\nc 3\n"), MediaText, 1000, ms)
	require.ErrorIs(t, err, ErrSampleLimit)
	assert.Zero(t, ms.Len())
}

func TestConvertTargetLabelConflicts(t *testing.T) {
	body := []byte(`kubelet_node_name{node="real"} 1` + "\n")
	for _, honor := range []bool{false, true} {
		c := New(Options{HonorLabels: honor, TargetLabels: labels.FromStrings("job", "kubeedge", "node", "edge-1")})
		ms := pmetric.NewMetricSlice()
		_, err := c.Convert(body, MediaText, 1000, ms)
		require.NoError(t, err)
		attrs := ms.At(0).Gauge().DataPoints().At(0).Attributes().AsRaw()
		if honor {
			assert.Equal(t, map[string]any{"node": "real"}, attrs)
		} else {
			assert.Equal(t, map[string]any{"exported_node": "real"}, attrs, "node is the resource's")
		}
	}
}

func TestConvertStaleNaNInBody(t *testing.T) {
	c := New(Options{})
	ms := pmetric.NewMetricSlice()
	_, err := c.Convert([]byte("a NaN\n"), MediaText, 1000, ms)
	require.NoError(t, err)
	v := ms.At(0).Gauge().DataPoints().At(0)
	assert.True(t, math.IsNaN(v.DoubleValue()))
	assert.False(t, v.Flags().NoRecordedValue())
}

func TestConvertTypeChange(t *testing.T) {
	c := New(Options{})
	ms := pmetric.NewMetricSlice()
	_, err := c.Convert([]byte("# HELP x help\n# TYPE x gauge\nx 1\n"), MediaText, 1000, ms)
	require.NoError(t, err)
	require.Equal(t, pmetric.MetricTypeGauge, ms.At(0).Type())
	for i, want := range []pmetric.MetricType{pmetric.MetricTypeSum, pmetric.MetricTypeSum} {
		ms = pmetric.NewMetricSlice()
		st, err := c.Convert([]byte("# TYPE x counter\nx 2\n"), MediaText, int64(2000+i*1000), ms)
		require.NoError(t, err)
		assert.Zero(t, st.Stale)
		if i > 0 {
			require.Equal(t, 1, ms.Len())
			assert.Equal(t, want, ms.At(0).Type())
		}
	}
}
