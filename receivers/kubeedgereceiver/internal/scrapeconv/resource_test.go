package scrapeconv

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/sampleconv"
	"github.com/edgetel/edgetel/internal/testing/scrapetest"
)

// exported is what the edgetel exporters, with their default resource_constant_labels, make of
// one scrape of body whose target labels travel on the resource, as the receiver sends them.
func exported(t *testing.T, c *Converter, body []byte, scrapeMs int64) scrapetest.Series {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ResourceAttributes(c.opts.TargetLabels, rm.Resource().Attributes())
	_, err := c.Convert(body, MediaText, scrapeMs, rm.ScopeMetrics().AppendEmpty().Metrics())
	require.NoError(t, err)
	got := scrapetest.Appender{}
	_, err = sampleconv.New(sampleconv.DefaultOutputConfig().Options()).Convert(md, got)
	require.NoError(t, err)
	return scrapetest.Series(got)
}

// relabelled is s with cfgs applied to every series, as Prometheus' metric_relabel_configs.
func relabelled(t *testing.T, s scrapetest.Series, cfgs []*relabel.Config) scrapetest.Series {
	t.Helper()
	out := scrapetest.Series{}
	for k, v := range s {
		ls, err := parser.NewParser(parser.Options{}).ParseMetric(k)
		require.NoError(t, err)
		lb := labels.NewBuilder(ls)
		if relabel.ProcessBuilder(lb, cfgs...) {
			out[lb.Labels().String()] = v
		}
	}
	return out
}

// Target labels carried once by the resource come out of the exporters as the series a
// Prometheus scrape of the capture stores, relabelling that changes or removes one of them
// included, and so do the staleness markers of a family that went away.
func TestResourceLabelsExportTheSameSeries(t *testing.T) {
	body := fixture(t, "metrics-cadvisor-1.35.txt")
	cfgs := []*relabel.Config{
		{SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("container_cpu_.*"), TargetLabel: "node",
			Replacement: "", Action: relabel.Replace, Separator: ";"},
		{SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("container_memory_.*"), TargetLabel: "metrics_path",
			Replacement: "/elsewhere", Action: relabel.Replace, Separator: ";"},
	}
	for _, c := range cfgs {
		require.NoError(t, c.Validate(model.UTF8Validation))
	}
	tl := labels.FromStrings("job", "kubeedge", "instance", "edge-1", "node", "edge-1",
		"metrics_path", "/metrics/cadvisor", "region", "eu")
	for _, withRelabel := range []bool{false, true} {
		opts := Options{TargetLabels: tl, HonorTimestamps: true}
		want, err := scrapetest.FromExposition(body, tl)
		require.NoError(t, err)
		if withRelabel {
			opts.Relabel = cfgs
			want = relabelled(t, want, cfgs)
		}
		c := New(opts)
		assert.Empty(t, scrapetest.Diff(want, exported(t, c, body, 1_800_000_000_000), 10))

		stale := exported(t, c, dropFamily(body, "container_memory_rss"), 1_800_000_015_000)
		markers := 0
		for k, samples := range stale {
			if !math.IsNaN(samples[0].Value) {
				continue
			}
			markers++
			assert.Contains(t, want, k, "a staleness marker for a stored series")
			assert.True(t, strings.HasPrefix(k, `{__name__="container_memory_rss"`), k)
			if withRelabel {
				assert.Contains(t, k, `metrics_path="/elsewhere"`)
			}
		}
		assert.Positive(t, markers)
		if withRelabel {
			for k := range want {
				if strings.HasPrefix(k, `{__name__="container_cpu_`) {
					require.NotContains(t, k, `node=`, "relabelling removed node")
				}
			}
		}
	}
}

// dropFamily is body without the lines of family name.
func dropFamily(body []byte, name string) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		l := strings.TrimPrefix(strings.TrimPrefix(string(line), "# HELP "), "# TYPE ")
		if rest, ok := strings.CutPrefix(l, name); ok && (rest == "" || rest[0] == '{' || rest[0] == ' ') {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// The data points carry only the series' own labels; the target labels go to the resource,
// job and instance under their semantic-convention names.
func TestTargetLabelsLeaveThePointsLean(t *testing.T) {
	c := New(Options{TargetLabels: targetLabels})
	ms := pmetric.NewMetricSlice()
	_, err := c.Convert([]byte("container_threads{pod=\"web\"} 3\n"), MediaText, 1000, ms)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"pod": "web"}, ms.At(0).Gauge().DataPoints().At(0).Attributes().AsRaw())
	res := pmetric.NewResourceMetrics().Resource().Attributes()
	ResourceAttributes(targetLabels, res)
	assert.Equal(t, map[string]any{"service.name": "kubeedge", "service.instance.id": "edge-1",
		"node": "edge-1", "metrics_path": "/metrics/cadvisor"}, res.AsRaw())
}
