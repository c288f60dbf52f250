package kubeedgereceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// Each bad node fails only its own target, with its own reason, and the healthy nodes keep
// being scraped on time.
func TestEdgesimBadNodesFailAlone(t *testing.T) {
	s, fleetFile := startSim(t, 8)
	nodes := s.Fleet().Nodes
	const path = "/metrics/resource"
	bad := map[string]string{
		nodes[0].Name: reasonParse,
		nodes[1].Name: reasonTimeout,
		nodes[2].Name: reasonSampleLimit,
		nodes[3].Name: reasonTooLarge,
		nodes[4].Name: reasonStatus,
	}
	s.SetMalformed(nodes[0].Name, true)
	s.SetSlowBody(nodes[1].Name, 5*time.Second)
	s.SetExplosion(nodes[2].Name, 2000)
	s.SetExplosion(nodes[3].Name, 50000)
	s.Disconnect(nodes[4].Name)

	cfg := simConfig(s, fleetFile, 400*time.Millisecond)
	cfg.ScrapeTimeout = 300 * time.Millisecond
	cfg.Endpoints.Metrics.Enabled = false
	cfg.Endpoints.Cadvisor.Enabled = false
	cfg.SampleLimit = 1000
	cfg.BodySizeLimit = 512 << 10
	// One scrape at a time: a stuck slot would stall everyone behind it.
	cfg.MaxConcurrentScrapes = 1
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.MetricsSink)
	startReceiverWith(t, set, cfg, sink)

	// Healthy nodes get several good scrapes while the slow one keeps timing out.
	require.Eventually(t, func() bool {
		for _, n := range nodes[5:] {
			if len(batches(sink, n.Name)) < 4 {
				return false
			}
		}
		for name := range bad {
			if len(batches(sink, name)) < 2 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)

	for _, n := range nodes[5:] {
		for _, md := range batches(sink, n.Name) {
			up, ok := gaugeValue(md, "up", map[string]string{"metrics_path": path})
			require.True(t, ok)
			assert.Equal(t, 1.0, up, n.Name)
		}
	}
	for name, reason := range bad {
		md := batches(sink, name)[1]
		up, ok := gaugeValue(md, "up", map[string]string{"metrics_path": path})
		require.True(t, ok)
		assert.Zero(t, up, name)
		fails, ok := gaugeValue(md, "kubeedge_scrape_failures_total", map[string]string{"metrics_path": path, "reason": reason})
		assert.True(t, ok && fails >= 1, "%s: no %s failure counted", name, reason)
		connected, _ := gaugeValue(md, "kubeedge_node_connected", nil)
		assert.Zero(t, connected, name)
		// No scraped series leaked out of a failed scrape.
		assert.Equal(t, len(healthNames), md.MetricCount(), name)
	}

	m, err := tel.GetMetric("otelcol_receiver_kubeedge_scrape_failures")
	require.NoError(t, err)
	counted := map[string]int64{}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		r, _ := dp.Attributes.Value(attribute.Key("reason"))
		counted[r.AsString()] += dp.Value
	}
	for _, reason := range bad {
		assert.Positive(t, counted[reason], reason)
	}
}
