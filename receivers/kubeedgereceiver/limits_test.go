package kubeedgereceiver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/scrapeconv"
)

// The default limits take a real kubelet's endpoints whole (the captures of /metrics,
// /metrics/cadvisor and /metrics/resource fit several times over) and stop a bomb.
func TestDefaultLimitsFitARealKubelet(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.Positive(t, cfg.SampleLimit)
	require.Positive(t, cfg.NodeSeriesLimit)
	total := 0
	for _, name := range []string{"metrics-kubelet-1.21.txt", "metrics-cadvisor-1.35.txt", "metrics-resource-1.35.txt"} {
		c := scrapeconv.New(scrapeconv.Options{SampleLimit: cfg.SampleLimit, SeriesLimit: cfg.NodeSeriesLimit})
		st, err := c.Convert(fixture(t, name), scrapeconv.MediaText, time.Now().UnixMilli(), pmetric.NewMetricSlice())
		require.NoError(t, err, name)
		assert.LessOrEqual(t, 5*st.PostRelabel, cfg.SampleLimit, "%s: %d samples, the default leaves less than 5x room", name, st.PostRelabel)
		total += st.Scraped
	}
	assert.LessOrEqual(t, 5*total, cfg.NodeSeriesLimit, "a node's three endpoints, %d series, with 5x room", total)
}

func seriesBody(prefix string, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE %s gauge\n", prefix)
	for i := range n {
		fmt.Fprintf(&b, "%s{i=\"%d\"} 1\n", prefix, i)
	}
	return []byte(b.String())
}

// node_series_limit is shared by a node's endpoints: the endpoint that takes the node past it
// fails (series_limit) and the others are kept; another node has its own budget.
func TestNodeSeriesLimitIsPerNode(t *testing.T) {
	cc := newFakeCloudcore(t)
	for _, host := range []string{"10.0.0.1:10351", "10.0.0.2:10351"} {
		cc.set(host, "/metrics", seriesBody("kubelet_thing", 60))
		cc.set(host, "/metrics/cadvisor", seriesBody("container_thing", 60))
	}
	sink := new(consumertest.MetricsSink)
	cfg := testConfig(t, cc, StaticNode{Name: "edge-1", IP: "10.0.0.1", Port: 10351},
		StaticNode{Name: "edge-2", IP: "10.0.0.2", Port: 10351})
	cfg.Endpoints.Metrics.Enabled = true
	cfg.NodeSeriesLimit = 100
	require.NoError(t, cfg.Validate())
	startReceiver(t, cfg, sink)
	require.Eventually(t, func() bool { return len(batches(sink, "edge-1")) >= 2 && len(batches(sink, "edge-2")) >= 2 },
		10*time.Second, 10*time.Millisecond)
	for _, node := range []string{"edge-1", "edge-2"} {
		md := batches(sink, node)[1]
		up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics"})
		assert.Equal(t, 1.0, up, node)
		up, _ = gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics/cadvisor"})
		assert.Zero(t, up, node)
		fails, ok := gaugeValue(md, "kubeedge_scrape_failures_total", map[string]string{"metrics_path": "/metrics/cadvisor", "reason": reasonSeriesLimit})
		assert.True(t, ok && fails >= 1, node)
	}
}

type refusingConsumer struct{ consumertest.MetricsSink }

func (*refusingConsumer) ConsumeMetrics(context.Context, pmetric.Metrics) error {
	return errors.New("edgeremotewrite: buffer: diskqueue: file system full")
}

// A batch the next consumer refuses is lost: the receiver says so at Warn level, not Debug,
// rate-limited, with how many batches and points were refused.
func TestRefusedBatchesAreWarnings(t *testing.T) {
	cc := newFakeCloudcore(t)
	cc.set("10.0.0.1:10351", "/metrics/cadvisor", seriesBody("container_thing", 10))
	core, logs := observer.New(zap.WarnLevel)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	cfg := testConfig(t, cc, StaticNode{Name: "edge-1", IP: "10.0.0.1", Port: 10351})
	r, err := newReceiver(set, cfg, &refusingConsumer{}, testRegistry)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	require.Eventually(t, func() bool { return logs.FilterMessageSnippet("refused").Len() > 0 }, 10*time.Second, 10*time.Millisecond)
	e := logs.FilterMessageSnippet("refused").All()[0]
	assert.Equal(t, zap.WarnLevel, e.Level)
	assert.Contains(t, e.ContextMap()["error"], "file system full")
	assert.Positive(t, e.ContextMap()["data_points"])
	// Scrapes every 200 ms keep being refused; the rate limit keeps them to that one line.
	require.Eventually(t, func() bool {
		r.refusals.mu.Lock()
		defer r.refusals.mu.Unlock()
		return r.refusals.batches >= 3
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, logs.FilterMessageSnippet("refused").Len())
}
