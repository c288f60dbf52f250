package scrapeconv

import (
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestMetricRelabelConfigs(t *testing.T) {
	cfgs := []*relabel.Config{
		{SourceLabels: model.LabelNames{"__name__"}, Regex: relabel.MustNewRegexp("container_tasks_state"), Action: relabel.Drop},
		{SourceLabels: model.LabelNames{"pod"}, Regex: relabel.MustNewRegexp("(.*)-[a-z0-9]+"), TargetLabel: "workload",
			Replacement: "$1", Action: relabel.Replace, Separator: ";"},
		{Regex: relabel.MustNewRegexp("id"), Action: relabel.LabelDrop, Separator: ";", Replacement: "$1"},
	}
	for _, c := range cfgs {
		require.NoError(t, c.Validate(model.UTF8Validation))
	}
	body := []byte("# TYPE container_tasks_state gauge\ncontainer_tasks_state{pod=\"a-1\"} 1\n" +
		"# TYPE container_threads gauge\ncontainer_threads{pod=\"web-7f9\",id=\"/kubepods/x\"} 3\n")
	c := New(Options{Relabel: cfgs, TargetLabels: targetLabels})
	ms := pmetric.NewMetricSlice()
	st, err := c.Convert(body, MediaText, 1000, ms)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Scraped)
	assert.Equal(t, 1, st.PostRelabel)
	require.Equal(t, 1, ms.Len())
	assert.Equal(t, "container_threads", ms.At(0).Name())
	assert.Equal(t, map[string]any{"pod": "web-7f9", "workload": "web"},
		ms.At(0).Gauge().DataPoints().At(0).Attributes().AsRaw())

	// Dropped series stay dropped from the cache on the next scrape.
	ms = pmetric.NewMetricSlice()
	st, err = c.Convert(body, MediaText, 2000, ms)
	require.NoError(t, err)
	assert.Equal(t, 1, st.PostRelabel)
	assert.Zero(t, st.Stale)
}
