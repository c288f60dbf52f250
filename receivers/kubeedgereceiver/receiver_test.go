package kubeedgereceiver

import (
	"context"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sampleconv"
	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
	"github.com/edgetel/edgetel/internal/testing/scrapetest"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// testRegistry is a registry of its own for tests, so none of them touches kube.Shared; it
// builds real clients, which fail without a cluster.
var testRegistry = kube.NewRegistry(kube.NewClient)

// fakeCloudcore answers like cloudcore's stream server: the node is chosen by the Host header,
// an unknown node gets 500 with an empty body.
type fakeCloudcore struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string]map[string][]byte // host → path → body
	hosts  map[string]int
	handle map[string]http.HandlerFunc // host → special behaviour
}

func newFakeCloudcore(t *testing.T) *fakeCloudcore {
	f := &fakeCloudcore{bodies: map[string]map[string][]byte{}, hosts: map[string]int{}, handle: map[string]http.HandlerFunc{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCloudcore) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hosts[r.Host]++
	h := f.handle[r.Host]
	body, ok := f.bodies[r.Host][r.URL.Path]
	f.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(body)
}

func (f *fakeCloudcore) set(host, path string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bodies[host] == nil {
		f.bodies[host] = map[string][]byte{}
	}
	f.bodies[host][path] = body
}

func (f *fakeCloudcore) setHandler(host string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handle[host] = h
}

func (f *fakeCloudcore) count(host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts[host]
}

// caFile writes the server's certificate, which signs itself, as a CA file.
func (f *fakeCloudcore) caFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "ca.crt")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	require.NoError(t, os.WriteFile(path, pemBytes, 0o600))
	return path
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := captures.Read(name)
	require.NoError(t, err)
	return b
}

func testConfig(t *testing.T, cc *fakeCloudcore, nodes ...StaticNode) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.CollectionInterval = 200 * time.Millisecond
	cfg.ScrapeTimeout = 150 * time.Millisecond
	cfg.Endpoints.Metrics.Enabled = false
	cfg.Endpoints.Resource.Enabled = false
	cfg.Discovery.Mode = DiscoveryStatic
	cfg.Discovery.Static.Nodes = nodes
	cfg.Transport.Cloudcore.Endpoints = []string{cc.Listener.Addr().String()}
	cfg.Transport.Cloudcore.TLS.CAFile = cc.caFile(t)
	require.NoError(t, cfg.Validate())
	return cfg
}

func startReceiver(t *testing.T, cfg *Config, sink *consumertest.MetricsSink) *kubeedgeReceiver {
	t.Helper()
	return startReceiverWith(t, receivertest.NewNopSettings(metadata.Type), cfg, sink)
}

func startReceiverWith(t *testing.T, set receiver.Settings, cfg *Config, sink *consumertest.MetricsSink) *kubeedgeReceiver {
	t.Helper()
	r, err := newReceiver(set, cfg, sink, testRegistry)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	return r
}

// batches returns the sink's batches for one node.
func batches(sink *consumertest.MetricsSink, node string) []pmetric.Metrics {
	var out []pmetric.Metrics
	for _, md := range sink.AllMetrics() {
		if v, ok := md.ResourceMetrics().At(0).Resource().Attributes().Get("k8s.node.name"); ok && v.Str() == node {
			out = append(out, md)
		}
	}
	return out
}

// allMetrics are the metrics of every resource (one per endpoint, one for the health series)
// and scope of md, with their resource's attributes.
func allMetrics(md pmetric.Metrics) ([]pmetric.Metric, []pcommon.Map) {
	var ms []pmetric.Metric
	var res []pcommon.Map
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				ms = append(ms, m)
				res = append(res, rm.Resource().Attributes())
			}
		}
	}
	return ms, res
}

// gaugeValue finds a health gauge of a batch by name and attributes.
func gaugeValue(md pmetric.Metrics, name string, attrs map[string]string) (float64, bool) {
	ms, _ := allMetrics(md)
	for _, m := range ms {
		if m.Name() != name {
			continue
		}
		dps := pmetric.NewNumberDataPointSlice()
		switch m.Type() {
		case pmetric.MetricTypeGauge:
			dps = m.Gauge().DataPoints()
		case pmetric.MetricTypeSum:
			dps = m.Sum().DataPoints()
		}
	points:
		for j := 0; j < dps.Len(); j++ {
			dp := dps.At(j)
			for k, v := range attrs {
				if got, ok := dp.Attributes().Get(k); !ok || got.Str() != v {
					continue points
				}
			}
			return dp.DoubleValue(), true
		}
	}
	return 0, false
}

// firstCadvisorBatch is the first batch of one node serving the cadvisor capture, with two
// mapped node labels, and what a Prometheus scrape of it would store.
func firstCadvisorBatch(t *testing.T) (pmetric.Metrics, scrapetest.Series) {
	t.Helper()
	cc := newFakeCloudcore(t)
	body := fixture(t, "metrics-cadvisor-1.35.txt")
	cc.set("10.0.0.1:10351", "/metrics/cadvisor", body)
	sink := new(consumertest.MetricsSink)
	cfg := testConfig(t, cc, StaticNode{Name: "edge-1", IP: "10.0.0.1", Port: 10351,
		Labels: map[string]string{"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "site-7"}})
	startReceiver(t, cfg, sink)

	require.Eventually(t, func() bool { return len(batches(sink, "edge-1")) > 0 }, 5*time.Second, 10*time.Millisecond)
	extra := labels.FromStrings("job", "kubeedge", "instance", "edge-1", "node", "edge-1",
		"metrics_path", "/metrics/cadvisor", "region", "eu", "site", "site-7")
	want, err := scrapetest.FromExposition(body, extra)
	require.NoError(t, err)
	return batches(sink, "edge-1")[0], want
}

func TestScrapeThroughCloudcoreEndToEnd(t *testing.T) {
	md, want := firstCadvisorBatch(t)
	up, ok := gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics/cadvisor"})
	require.True(t, ok)
	assert.Equal(t, 1.0, up)

	got, err := scrapetest.FromMetrics(md)
	require.NoError(t, err)
	assert.Empty(t, scrapetest.Diff(want, withoutHealth(got), 10))
}

// Each endpoint's target labels travel once on its own resource and the node's health series
// on another (without metrics_path, which each of them carries itself); the data points carry
// only the scraped labels, and the edgetel exporters' conversion gives the series a Prometheus
// scrape of the exposition stores.
func TestTargetLabelsOnTheResource(t *testing.T) {
	md, want := firstCadvisorBatch(t)
	rms := md.ResourceMetrics()
	require.Equal(t, 2, rms.Len(), "the endpoint's resource and the health resource")
	node := map[string]any{"service.name": "kubeedge", "service.instance.id": "edge-1", "k8s.node.name": "edge-1",
		"node": "edge-1", "region": "eu", "site": "site-7"}
	endpoint := maps.Clone(node)
	endpoint["metrics_path"] = "/metrics/cadvisor"
	assert.Equal(t, endpoint, rms.At(0).Resource().Attributes().AsRaw())
	assert.Equal(t, node, rms.At(1).Resource().Attributes().AsRaw())
	for _, rm := range rms.All() {
		require.Equal(t, 1, rm.ScopeMetrics().Len())
		assert.Equal(t, metadata.ScopeName, rm.ScopeMetrics().At(0).Scope().Name())
		assert.Zero(t, rm.ScopeMetrics().At(0).Scope().Attributes().Len())
	}
	ms, _ := allMetrics(md)
	for _, m := range ms {
		for _, name := range []string{"node", "region", "site", "k8s.node.name"} {
			require.NotContains(t, dataPointAttributes(m), name, m.Name())
		}
	}

	got := scrapetest.Appender{}
	_, err := sampleconv.New(sampleconv.DefaultOutputConfig().Options()).Convert(md, got)
	require.NoError(t, err)
	assert.Empty(t, scrapetest.Diff(want, withoutHealth(scrapetest.Series(got)), 10))
	up, ok := got[`{__name__="up", instance="edge-1", job="kubeedge", metrics_path="/metrics/cadvisor", node="edge-1", region="eu", site="site-7"}`]
	require.True(t, ok, "up with the node's target labels")
	assert.Equal(t, 1.0, up[0].Value)
}

// dataPointAttributes are the attribute names of m's first data point.
func dataPointAttributes(m pmetric.Metric) []string {
	var attrs pcommon.Map
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		attrs = m.Gauge().DataPoints().At(0).Attributes()
	case pmetric.MetricTypeSum:
		attrs = m.Sum().DataPoints().At(0).Attributes()
	case pmetric.MetricTypeHistogram:
		attrs = m.Histogram().DataPoints().At(0).Attributes()
	case pmetric.MetricTypeSummary:
		attrs = m.Summary().DataPoints().At(0).Attributes()
	}
	var names []string
	for k := range attrs.All() {
		names = append(names, k)
	}
	return names
}

var healthNames = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling", "kubeedge_scrape_samples_dropped", "kubeedge_scrape_failures_total",
	"kubeedge_node_ready", "kubeedge_node_connected", "kubeedge_node_seconds_since_last_good_scrape",
	"kubeedge_node_disconnects_total"}

// measuredNames are synthetic series present only once something was measured (the clock
// offset needs a sample that carried its own timestamp).
var measuredNames = []string{"kubeedge_node_clock_offset_seconds"}

// withoutHealth drops the receiver's synthetic series, leaving the scraped ones.
func withoutHealth(s scrapetest.Series) scrapetest.Series {
	out := scrapetest.Series{}
	for k, v := range s {
		health := false
		for _, n := range append(measuredNames, healthNames...) {
			if strings.HasPrefix(k, `{__name__="`+n+`"`) {
				health = true
			}
		}
		if !health {
			out[k] = v
		}
	}
	return out
}

// What a failed edge looks like through cloudcore: each answer fails its scrape with its own
// reason, while a healthy node next to them is scraped.
func TestCloudcoreFailureModes(t *testing.T) {
	cc := newFakeCloudcore(t)
	nodes := []StaticNode{
		{Name: "empty", IP: "10.0.0.1"}, {Name: "cut", IP: "10.0.0.2"}, {Name: "busy", IP: "10.0.0.3"},
		{Name: "om-cut", IP: "10.0.0.4"}, {Name: "fine", IP: "10.0.0.5"},
	}
	want := map[string]string{"empty": reasonEmpty, "cut": reasonTruncated, "busy": reasonStatus, "om-cut": reasonTruncated}
	cc.setHandler("10.0.0.1:10350", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	cc.setHandler("10.0.0.2:10350", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("a 1\nb 2")) })
	cc.setHandler("10.0.0.3:10350", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	cc.setHandler("10.0.0.4:10350", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0")
		_, _ = w.Write([]byte("# TYPE a gauge\na 1\n"))
	})
	cc.set("10.0.0.5:10350", "/metrics/cadvisor", []byte("a 1\n"))
	sink := new(consumertest.MetricsSink)
	startReceiver(t, testConfig(t, cc, nodes...), sink)

	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if len(batches(sink, n.Name)) == 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond)
	for name, reason := range want {
		md := batches(sink, name)[0]
		fails, ok := gaugeValue(md, "kubeedge_scrape_failures_total", map[string]string{"metrics_path": "/metrics/cadvisor", "reason": reason})
		assert.True(t, ok && fails == 1, "%s: want a %s failure", name, reason)
		up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics/cadvisor"})
		assert.Zero(t, up, name)
	}
	up, _ := gaugeValue(batches(sink, "fine")[0], "up", map[string]string{"metrics_path": "/metrics/cadvisor"})
	assert.Equal(t, 1.0, up)
	v, ok := gaugeValue(batches(sink, "fine")[0], "a", nil)
	assert.True(t, ok && v == 1)
}
