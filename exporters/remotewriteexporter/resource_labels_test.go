package remotewriteexporter

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// receiverBatch is the kubeedge receiver's first batch of a node serving the cadvisor capture
// (direct transport, two mapped node labels): one resource for the endpoint, one for the
// node's health series.
func receiverBatch(t *testing.T) pmetric.Metrics {
	t.Helper()
	body, err := captures.Read("metrics-cadvisor-1.35.txt")
	require.NoError(t, err)
	kubelet := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics/cadvisor" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	}))
	t.Cleanup(kubelet.Close)
	u, err := url.Parse(kubelet.URL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)

	f := kubeedgereceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*kubeedgereceiver.Config)
	cfg.CollectionInterval = time.Second
	cfg.Endpoints.Metrics.Enabled, cfg.Endpoints.Resource.Enabled = false, false
	cfg.Discovery.Mode = kubeedgereceiver.DiscoveryStatic
	cfg.Discovery.Static.Nodes = []kubeedgereceiver.StaticNode{{Name: "edge-1", IP: "127.0.0.1", Port: port,
		Labels: map[string]string{"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "site-7"}}}
	cfg.Transport.Mode = kubeedgereceiver.TransportDirect
	cfg.Transport.Direct.Endpoint = u.Host
	sink := new(consumertest.MetricsSink)
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) > 0 }, 10*time.Second, 20*time.Millisecond)
	md := sink.AllMetrics()[0]
	require.Equal(t, 2, md.ResourceMetrics().Len())
	return md
}

// contribSeries runs md through contrib's prometheus_remote_write exporter, configured as a
// user would with extra (on top of no suffixes, no scope or target_info series, the external
// label cluster=c1), and returns the label sets it wrote.
func contribSeries(t *testing.T, md pmetric.Metrics, extra map[string]any) map[string]bool {
	t.Helper()
	sk := newSink(t)
	f := prometheusremotewriteexporter.NewFactory()
	cfg := f.CreateDefaultConfig()
	conf := map[string]any{
		"endpoint":            sk.url(),
		"add_metric_suffixes": false,
		"disable_scope_info":  true,
		"target_info":         map[string]any{"enabled": false},
		"external_labels":     map[string]any{"cluster": "c1"},
	}
	maps.Copy(conf, extra)
	require.NoError(t, confmap.NewFromStringMap(conf).Unmarshal(cfg))
	require.NoError(t, cfg.(interface{ Validate() error }).Validate())
	e, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(context.Background(), componenttest.NewNopHost()))
	in := pmetric.NewMetrics()
	md.CopyTo(in)
	require.NoError(t, e.ConsumeMetrics(context.Background(), in))
	require.NoError(t, e.Shutdown(context.Background()), "shutdown flushes the queue")
	return keys(sk)
}

// edgetelSeries runs md through edgeremotewrite with its default output settings.
func edgetelSeries(t *testing.T, md pmetric.Metrics) map[string]bool {
	t.Helper()
	sk := newSink(t)
	e := startExporter(t, testConfig(t, sk.url()), componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), md))
	points := md.DataPointCount()
	require.Eventually(t, func() bool { return e.tel.sentTotal.Load() >= int64(points) }, 30*time.Second, 20*time.Millisecond)
	return keys(sk)
}

func keys(sk *sink) map[string]bool {
	out := map[string]bool{}
	for k := range sk.snapshot() {
		out[k] = true
	}
	return out
}

// The kubeedge receiver carries its target labels on each endpoint's resource. Contrib's
// prometheus_remote_write exporter turns them into the same series edgeremotewrite writes by
// default: exactly with resource_constant_labels naming them (or excluding the rest), and with
// the deprecated resource_to_telemetry_conversion {enabled: true} plus the resource's identity
// attributes service.name, service.instance.id and k8s.node.name as labels of their own,
// which repeat job, instance and node.
func TestContribExporterWritesTheSameSeries(t *testing.T) {
	md := receiverBatch(t)
	want := edgetelSeries(t, md)
	require.Greater(t, len(want), 4000, "the capture's series and the health series")
	require.True(t, want[`up{cluster="c1",instance="edge-1",job="kubeedge",metrics_path="/metrics/cadvisor",node="edge-1",region="eu",site="site-7"}`])

	for name, conf := range map[string]map[string]any{
		"included": {"resource_constant_labels": map[string]any{"included": []any{"node", "metrics_path", "region", "site"}}},
		"excluded": {"resource_constant_labels": map[string]any{"excluded": []any{"service.*", "k8s.*"}}},
	} {
		got := contribSeries(t, md, conf)
		assert.Empty(t, setDiff(want, got, 5), name)
	}

	got := contribSeries(t, md, map[string]any{"resource_to_telemetry_conversion": map[string]any{"enabled": true}})
	identity := map[string]string{"service_name": "job", "service_instance_id": "instance", "k8s_node_name": "node"}
	stripped := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for k := range got {
		ls, err := p.ParseMetric(k)
		require.NoError(t, err, k)
		b := labels.NewBuilder(ls)
		for extra, same := range identity {
			require.Equal(t, ls.Get(same), ls.Get(extra), "%s repeats %s in %s", extra, same, k)
			b.Del(extra)
		}
		var pl []prompb.Label
		b.Labels().Range(func(l labels.Label) { pl = append(pl, prompb.Label{Name: l.Name, Value: l.Value}) })
		stripped[seriesKey(pl)] = true
	}
	assert.Empty(t, setDiff(want, stripped, 5))
}

// setDiff lists up to limit keys that are in one set only.
func setDiff(want, got map[string]bool, limit int) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !got[k] && len(out) < limit {
			out = append(out, "missing "+k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if !want[k] && len(out) < limit {
			out = append(out, "unexpected "+k)
		}
	}
	return out
}
