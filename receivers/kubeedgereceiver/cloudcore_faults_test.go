package kubeedgereceiver

import (
	"context"
	"path/filepath"
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

	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// What real cloudcore was seen doing (docs/kubeedge.md §2.4), through edgesim, which does the same.

// startHASim runs a fleet behind several cloudcore replicas, every one configured.
func startHASim(t *testing.T, nodes, cloudcores int, lc edgesim.LogsConfig) (*edgesim.Sim, string) {
	t.Helper()
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	s, err := edgesim.New(edgesim.Config{Nodes: nodes, Seed: 7, Listen: "127.0.0.1:0", TLSDir: t.TempDir(),
		FleetFile: fleetFile, ManualStep: true, Cloudcores: cloudcores, Logs: lc})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Close() })
	return s, fleetFile
}

func haConfig(s *edgesim.Sim, fleetFile string, interval time.Duration) *Config {
	cfg := simConfig(s, fleetFile, interval)
	cfg.Transport.Cloudcore.Endpoints = s.Addrs()
	cfg.Transport.Cloudcore.TLS.CertFile, cfg.Transport.Cloudcore.TLS.KeyFile = "", ""
	return cfg
}

func upOf(md pmetric.Metrics, path string) float64 {
	if md.ResourceMetrics().Len() == 0 {
		return -1
	}
	up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": path})
	return up
}

func failuresOf(md pmetric.Metrics, path, reason string) float64 {
	v, _ := gaugeValue(md, "kubeedge_scrape_failures_total", map[string]string{"metrics_path": path, "reason": reason})
	return v
}

func TestEdgesimTunnelMovesBetweenCloudcores(t *testing.T) {
	s, fleetFile := startHASim(t, 2, 2, edgesim.LogsConfig{})
	const interval = 500 * time.Millisecond
	cfg := haConfig(s, fleetFile, interval)
	cfg.Endpoints.Metrics.Enabled, cfg.Endpoints.Cadvisor.Enabled = false, false
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	name := s.Fleet().Nodes[0].Name
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, name), "/metrics/resource") == 1 }, 10*time.Second, 10*time.Millisecond)

	// Back and forth: each time the replica it left keeps a closed session and answers an empty 200.
	for _, to := range []int{1, 0, 1} {
		require.NoError(t, s.MoveTunnel(name, to))
		moved := time.Now()
		before := len(batches(sink, name))
		require.Eventually(t, func() bool { return len(batches(sink, name)) >= before+2 }, 10*time.Second, 10*time.Millisecond)
		// The round after the move (at most one interval later) scraped the node again.
		md := batches(sink, name)[before+1]
		assert.Equal(t, 1.0, upOf(md, "/metrics/resource"), "to %d", to)
		assert.Zero(t, failuresOf(md, "/metrics/resource", reasonEmpty), "a stale session is not a failed scrape")
		assert.Less(t, time.Since(moved), 2*interval+5*time.Second)
	}
	assert.Positive(t, s.Stats().StaleSession, "the replicas the tunnel left were asked, and answered empty")
	for _, md := range batches(sink, name) {
		assert.Equal(t, 1.0, upOf(md, "/metrics/resource"))
		assert.False(t, staleBatch(md))
	}
}

func TestEdgesimDeadKubeletCostsOneTimeoutPerEndpoint(t *testing.T) {
	s, fleetFile := startHASim(t, 1, 2, edgesim.LogsConfig{})
	cfg := haConfig(s, fleetFile, 2*time.Second)
	cfg.ScrapeTimeout = 300 * time.Millisecond
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	name := s.Fleet().Nodes[0].Name
	paths := cfg.Endpoints.paths()
	require.Len(t, paths, 3)
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, name), "/metrics") == 1 }, 20*time.Second, 10*time.Millisecond)

	s.SetKubeletDown(name, true)
	before := len(batches(sink, name))
	hungBefore, noSessionBefore := s.Stats().Hung, s.Stats().NoSession
	require.Eventually(t, func() bool { return len(batches(sink, name)) >= before+2 }, 20*time.Second, 10*time.Millisecond)
	md := batches(sink, name)[before+1]
	for _, p := range paths {
		assert.Zero(t, upOf(md, p), p)
		assert.Positive(t, failuresOf(md, p, reasonTimeout), p)
		d, _ := gaugeValue(md, "scrape_duration_seconds", map[string]string{"metrics_path": p})
		assert.Less(t, d, 1.0, p)
	}
	assert.False(t, staleBatch(md))
	assert.GreaterOrEqual(t, s.Stats().Hung-hungBefore, int64(3), "each endpoint waited on the replica holding the session")
	assert.Equal(t, noSessionBefore, s.Stats().NoSession, "and only on it: the other replica was not asked after the timeout")

	s.SetKubeletDown(name, false)
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, name), "/metrics") == 1 }, 20*time.Second, 10*time.Millisecond)
}

func TestEdgesimIPv6NodeIsScrapedByName(t *testing.T) {
	s, fleetFile := startHASim(t, 1, 1, edgesim.LogsConfig{})
	f, err := fleet.Load(fleetFile)
	require.NoError(t, err)
	f.Nodes[0].IP = "fd00:10::2"
	require.NoError(t, fleet.Save(fleetFile, f))
	cfg := haConfig(s, fleetFile, 300*time.Millisecond)
	cfg.Endpoints.Metrics.Enabled, cfg.Endpoints.Cadvisor.Enabled = false, false
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, f.Nodes[0].Name), "/metrics/resource") == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Zero(t, s.Stats().NoSession)
}

// A body cut by the tunnel (a line over 64 KiB, or the tunnel dropping mid-body) is a failed
// scrape counted truncated_body: up=0 and no staleness markers for the series it lacks.
func TestEdgesimCutBodiesAreFailedScrapes(t *testing.T) {
	s, fleetFile := startHASim(t, 1, 1, edgesim.LogsConfig{})
	const path = "/metrics/resource"
	cfg := haConfig(s, fleetFile, 300*time.Millisecond)
	cfg.Endpoints.Metrics.Enabled, cfg.Endpoints.Cadvisor.Enabled = false, false
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.MetricsSink)
	startReceiverWith(t, set, cfg, sink)
	name := s.Fleet().Nodes[0].Name
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, name), path) == 1 }, 10*time.Second, 10*time.Millisecond)

	check := func(what string) {
		t.Helper()
		before := len(batches(sink, name))
		require.Eventually(t, func() bool { return len(batches(sink, name)) >= before+3 }, 10*time.Second, 10*time.Millisecond)
		for _, md := range batches(sink, name)[before+1:] {
			assert.Zero(t, upOf(md, path), what)
			assert.Subset(t, append(measuredNames, healthNames...), metricNames(md), "%s: only the health series", what)
			assert.GreaterOrEqual(t, md.MetricCount(), len(healthNames), what)
			assert.False(t, staleBatch(md), what)
		}
		md := lastBatch(sink, name)
		assert.GreaterOrEqual(t, failuresOf(md, path, reasonTruncated)+failuresOf(md, path, reasonEmpty), 2.0, what)
	}
	s.SetLongLine(name, 70000)
	check("a 70,000-byte line")
	assert.Positive(t, s.Stats().LongLine)
	assert.Positive(t, failuresOf(lastBatch(sink, name), path, reasonTruncated))
	s.SetLongLine(name, 0)
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, name), path) == 1 }, 10*time.Second, 10*time.Millisecond)

	s.SetErrorRate(1) // every answer cut at a random line boundary
	check("a tunnel dropped mid-body")
	s.SetErrorRate(0)
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, name), path) == 1 }, 10*time.Second, 10*time.Millisecond)

	m, err := tel.GetMetric("otelcol_receiver_kubeedge_stale_markers")
	require.NoError(t, err)
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		assert.Zero(t, dp.Value, "no staleness markers at all")
	}
	m, err = tel.GetMetric("otelcol_receiver_kubeedge_scrape_failures")
	require.NoError(t, err)
	truncated := int64(0)
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if r, _ := dp.Attributes.Value(attribute.Key("reason")); r.AsString() == reasonTruncated {
			truncated += dp.Value
		}
	}
	assert.Positive(t, truncated)
}

// metricNames lists the names of a batch's metrics.
func metricNames(md pmetric.Metrics) []string {
	var out []string
	for i := range md.ResourceMetrics().Len() {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				out = append(out, ms.At(k).Name())
			}
		}
	}
	return out
}
