package scrapeconv

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/sampleconv"
)

type collected []string

func (c *collected) Append(ls labels.Labels, t int64, v float64) error {
	*c = append(*c, fmt.Sprintf("%s %d %v", ls, t, v))
	return nil
}

// exported is what the edgetel exporters make of two scrapes of body (the second drops the
// series of one family, for staleness markers): the Prometheus samples, sorted.
func exported(t *testing.T, opts Options, body []byte) []string {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", opts.TargetLabels.Get("job"))
	rm.Resource().Attributes().PutStr("service.instance.id", opts.TargetLabels.Get("instance"))
	c := New(opts)
	for i, b := range [][]byte{body, dropFamily(body, "container_memory_rss")} {
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(sampleconv.TargetLabelsScope)
		if opts.ScopeLabels {
			ScopeAttributes(opts.TargetLabels, sm.Scope().Attributes())
		}
		_, err := c.Convert(b, MediaText, 1_800_000_000_000+int64(i)*15_000, sm.Metrics())
		require.NoError(t, err)
	}
	var got collected
	_, err := sampleconv.New(sampleconv.Options{WithoutSuffixes: true}).Convert(md, &got)
	require.NoError(t, err)
	slices.Sort(got)
	return got
}

// Target labels carried once by the scope come out of the exporters as the same series, with
// the same samples and staleness markers, as when every data point carries them; relabelling
// that changes or removes one of them included.
func TestScopeLabelsExportTheSameSeries(t *testing.T) {
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
	for _, relabelled := range []bool{false, true} {
		opts := Options{TargetLabels: tl, HonorTimestamps: true}
		if relabelled {
			opts.Relabel = cfgs
		}
		want := exported(t, opts, body)
		opts.ScopeLabels = true
		got := exported(t, opts, body)
		require.Equal(t, len(want), len(got))
		require.Contains(t, strings.Join(want, "\n"), "NaN", "staleness markers for the family that went away")
		assert.Equal(t, want, got)
		if relabelled {
			assert.Contains(t, strings.Join(want, "\n"), `metrics_path="/elsewhere"`)
			for _, s := range want {
				if strings.HasPrefix(s, `{__name__="container_cpu_`) {
					require.NotContains(t, s, `node=`, "relabelling removed node")
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

// With ScopeLabels the data points carry only the series' own labels.
func TestScopeLabelsLeaveThePointsLean(t *testing.T) {
	c := New(Options{TargetLabels: targetLabels, ScopeLabels: true})
	ms := pmetric.NewMetricSlice()
	_, err := c.Convert([]byte("container_threads{pod=\"web\"} 3\n"), MediaText, 1000, ms)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"pod": "web"}, ms.At(0).Gauge().DataPoints().At(0).Attributes().AsRaw())
}
