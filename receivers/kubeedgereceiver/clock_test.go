package kubeedgereceiver

import (
	"context"
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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// hasMetric tells whether any scope of md holds a metric named name.
func hasMetric(md pmetric.Metrics, name string) bool {
	ms, _ := allMetrics(md)
	for _, m := range ms {
		if m.Name() == name {
			return true
		}
	}
	return false
}

// clockBody is a cadvisor-like body whose samples carry the node's clock, off by offset, and one
// sample without a timestamp.
func clockBody(offset time.Duration) []byte {
	ts := time.Now().Add(offset).UnixMilli()
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE container_stamped gauge\ncontainer_stamped{id=\"/a\"} 1 %d\ncontainer_stamped{id=\"/b\"} 2 %d\n", ts, ts)
	b.WriteString("# TYPE container_unstamped gauge\ncontainer_unstamped 3\n")
	return []byte(b.String())
}

// A node an hour fast: its stamped samples are refused (reason clock_skew) and its offset is
// exposed; a node a few seconds behind keeps everything and shows a small negative offset.
func TestFastNodeClockIsMeasuredAndRefused(t *testing.T) {
	cc := newFakeCloudcore(t)
	cc.set("10.0.0.1:10351", "/metrics/cadvisor", clockBody(time.Hour))
	cc.set("10.0.0.2:10351", "/metrics/cadvisor", clockBody(-5*time.Second))
	cfg := testConfig(t, cc, StaticNode{Name: "fast", IP: "10.0.0.1", Port: 10351},
		StaticNode{Name: "good", IP: "10.0.0.2", Port: 10351})
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.MetricsSink)
	startReceiverWith(t, set, cfg, sink)
	require.Eventually(t, func() bool { return len(batches(sink, "fast")) >= 2 && len(batches(sink, "good")) >= 2 },
		10*time.Second, 10*time.Millisecond)

	fast := batches(sink, "fast")[1]
	assert.False(t, hasMetric(fast, "container_stamped"), "samples an hour ahead reached the pipeline")
	assert.True(t, hasMetric(fast, "container_unstamped"), "a sample stamped with the scrape time is kept")
	offset, ok := gaugeValue(fast, "kubeedge_node_clock_offset_seconds", nil)
	require.True(t, ok)
	assert.InDelta(t, 3600, offset, 30)
	dropped, _ := gaugeValue(fast, "kubeedge_scrape_samples_dropped", map[string]string{"metrics_path": "/metrics/cadvisor"})
	assert.Equal(t, 2.0, dropped)

	good := batches(sink, "good")[1]
	assert.True(t, hasMetric(good, "container_stamped"))
	offset, ok = gaugeValue(good, "kubeedge_node_clock_offset_seconds", nil)
	require.True(t, ok)
	assert.InDelta(t, -5, offset, 3)

	m, err := tel.GetMetric("otelcol_receiver_kubeedge_samples_dropped")
	require.NoError(t, err)
	var skewed int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if r, _ := dp.Attributes.Value(attribute.Key("reason")); r.AsString() == "clock_skew" {
			skewed += dp.Value
		}
	}
	assert.GreaterOrEqual(t, skewed, int64(4), "two samples per scrape of the fast node, counted by reason")
}

// Label limits fail a scrape as Prometheus' do, after relabelling and with the target labels
// counted: a large body of long label sets within body_size_limit no longer passes.
func TestLabelLimitsFailTheScrape(t *testing.T) {
	long := strings.Repeat("v", 2000)
	var many strings.Builder
	many.WriteString("container_many{")
	for i := range 70 {
		fmt.Fprintf(&many, "l%d=\"x\",", i)
	}
	many.WriteString("} 1\n")
	bodies := map[string]string{
		"long-value": bodyOfLongLabels(1200, long),
		"long-name":  "container_x{" + strings.Repeat("n", 200) + "=\"a\"} 1\n",
		"many":       many.String(),
		"fine":       bodyOfLongLabels(4000, strings.Repeat("v", 200)),
	}
	cc := newFakeCloudcore(t)
	var nodes []StaticNode
	i := 0
	for name, body := range bodies {
		i++
		ip := fmt.Sprintf("10.0.0.%d", i)
		cc.set(ip+":10351", "/metrics/cadvisor", []byte(body))
		nodes = append(nodes, StaticNode{Name: name, IP: ip, Port: 10351})
	}
	cfg := testConfig(t, cc, nodes...)
	require.Greater(t, int64(len(bodies["long-value"])), int64(4<<20), "a large body")
	require.Less(t, int64(len(bodies["long-value"])), cfg.BodySizeLimit)
	cfg.ScrapeTimeout, cfg.CollectionInterval = 20*time.Second, 20*time.Second
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	require.Eventually(t, func() bool {
		for name := range bodies {
			if len(batches(sink, name)) < 1 {
				return false
			}
		}
		return true
	}, time.Minute, 20*time.Millisecond)
	for name := range bodies {
		md := batches(sink, name)[0]
		up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics/cadvisor"})
		fails, _ := gaugeValue(md, "kubeedge_scrape_failures_total", map[string]string{"metrics_path": "/metrics/cadvisor", "reason": reasonLabelLimit})
		if name == "fine" {
			assert.Equal(t, 1.0, up, name)
			continue
		}
		assert.Zero(t, up, name)
		assert.Equal(t, 1.0, fails, name)
	}
}

// bodyOfLongLabels is n series whose label values are value (about n × len(value) bytes).
func bodyOfLongLabels(n int, value string) string {
	var b strings.Builder
	b.WriteString("# TYPE container_long gauge\n")
	for i := range n {
		fmt.Fprintf(&b, "container_long{i=\"%d\",a=\"%s\",b=\"%s\"} 1\n", i, value, value)
	}
	return b.String()
}
